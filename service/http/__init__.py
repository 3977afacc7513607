"""The HTTP face: the aiohttp application, its routes, who is calling (cookies, tokens,
next-auth sessions), problem answers, the Event API served to apps' SDKs, and the group commit
that batches the writes of concurrent requests.

It uses the store (to write and read), the event, and the relay (the in-process relay of
``service serve``); none of them imports anything from here.
"""

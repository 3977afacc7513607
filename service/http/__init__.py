"""The HTTP face: the aiohttp application, its routes, who is calling (cookies, tokens), problem
answers, and the group commit that batches the writes of concurrent requests.

It uses the store (to write and read) and the relay (the in-process relay of ``service serve``);
neither of them imports anything from here.
"""

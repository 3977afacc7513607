"""Delivery: the relay loop, the delivery rules, the Inngest Event API client, the backoff
policy, and the ``service relay`` worker process.

It uses the store; the HTTP face and the command line use it.
"""

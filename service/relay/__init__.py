"""Delivery: the relay loop (``loop``) and the batch it holds (``leased_batch``), the delivery rules
(``deliverer``), the Inngest Event API client (``inngest_client``), the relay's view of Inngest and
its pauses (``health``), the outage probe (``probing``), the backoff policy (``backoff``), its
clock (``clock``), the housekeeping beside it (``housekeeping``), and the ``service relay``
worker process (``worker``).

It uses the store and the event; the HTTP face and the command line use it.
"""

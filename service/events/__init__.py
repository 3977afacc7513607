"""The event, apart from where it is stored or sent: its ids (``ids``), its payload as the
outbox keeps it and Inngest receives it, with the one JSON encoder (``payload``), and Inngest's
rules for what an event may be (``validation``).

The HTTP face builds events with it, the store writes them, the relay sends them; it uses
nothing else of the service.
"""

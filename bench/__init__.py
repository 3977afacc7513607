"""Benchmarks of the service: ingest, relay drain, delivery lag, inline vs outbox (see README)."""

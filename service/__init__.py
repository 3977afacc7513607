"""Syncs an application's settings to Inngest through a transactional outbox."""

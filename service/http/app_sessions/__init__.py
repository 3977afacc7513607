"""The Next.js app's session, whichever strategy the app uses: a JWT session cookie is
decrypted (``service.http.nextauth``); a database session's token is looked up in the app's
own database, read-only, as next-auth's adapters store it.

``presets`` (each adapter's tables and how it stores ``expires``), ``expires`` (those values
in UTC), ``lookup`` (the one statement, its read-only engine and the 5 s memory), ``table_check``
(the start-up check), ``reader`` (which strategy a cookie is, and the user of either).
"""

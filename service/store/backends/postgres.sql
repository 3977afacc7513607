-- Every statement the PostgreSQL backend runs that SQLAlchemy Core does not write, by name.
-- asyncpg's parameters ($1, $2, ...). Every name is qualified by {schema}, the service's
-- schema: a connection's search_path is never relied on (it does not survive a pooler in
-- transaction mode). {wake_key} is the advisory lock key of waiting relays, {take_in_key} that
-- of the relay taking in, and {channel} the NOTIFY channel, all the schema's own
-- (``postgres_sql``).
--
-- Waking relays costs a NOTIFY, and PostgreSQL serializes the commits of notifying
-- transactions, so a writer notifies only while a relay waits. A relay waiting for work holds
-- the key exclusively on its listening connection; a writing transaction tries to take it
-- shared, for the rest of the transaction: when it cannot, a relay waits, and the writer
-- notifies (delivered at commit). When it can, no relay waits, and none can start waiting
-- until the writer's transaction has ended, so the relay's last look for work sees its rows.

-- name: insert_events
-- The outbox INSERT. The rows come as one array per field of ``rows.OutboxRow``, in its order
-- ({row_arrays}, named {row_fields}); a shell's payload is head || the settings document ||
-- tail, read by the same statement; a complete event's is its head. An id stored already is
-- left out. The answer is the ids stored; a waiting relay is woken at commit.
WITH inserted AS (
    INSERT INTO {schema}.outbox_events (payload, status, attempts, next_attempt_at, {row_columns})
    SELECT CASE WHEN e.tail IS NULL THEN e.head ELSE e.head || document.data || e.tail END,
        'pending', 0, e.created_at, {row_values}
    FROM (SELECT coalesce((SELECT document FROM {schema}.app_settings WHERE id = 1), '{}')
            AS data) AS document,
        unnest({row_arrays}) WITH ORDINALITY AS e({row_fields}, position)
    ORDER BY e.position ON CONFLICT (id) DO NOTHING RETURNING id)
SELECT coalesce((SELECT array_agg(id) FROM inserted), '{}'),
    CASE WHEN pg_try_advisory_xact_lock_shared({wake_key}) THEN NULL
        ELSE pg_notify('{channel}', '') END

-- name: take_in
-- Up to $1 committed intake rows, deleted and inserted into the outbox in one statement, in the
-- order they were sent; an id stored already is dropped. The answer is how many rows left the
-- intake. One relay at a time takes in (the others find the key {take_in_key} taken and move
-- nothing this time): the rows need no row locks, which cost a WAL record each.
WITH taken AS (
    DELETE FROM {schema}.outbox_intake WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM {schema}.outbox_intake
        WHERE (SELECT pg_try_advisory_xact_lock({take_in_key})) LIMIT $1))
    RETURNING id, name, payload, env, created_at, inngest_id, ctid AS place),
stored AS (
    INSERT INTO {schema}.outbox_events
        (id, name, payload, status, attempts, created_at, next_attempt_at, env, inngest_id)
    SELECT id, name, payload, 'pending', 0, created_at, created_at, env, inngest_id
    FROM taken ORDER BY created_at, place ON CONFLICT (id) DO NOTHING)
SELECT count(*) FROM taken

-- name: claim_keys
-- Insert each idempotency key (one array per field of ``batch_writes.Claim``), or take over a
-- row whose time is up, in the order every writer takes keys, so that two replicas claiming
-- the same keys wait for one another instead of deadlocking; RETURNING names the keys that
-- are now ours.
INSERT INTO {schema}.idempotency_keys (caller, key, event_id, response, created_at, expires_at)
SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::text[], $4::text[], $5::bigint[],
    $6::bigint[]) AS c(caller, key, event_id, response, created_at, expires_at)
ORDER BY caller, key
ON CONFLICT (caller, key) DO UPDATE
SET event_id = excluded.event_id, response = excluded.response,
    created_at = excluded.created_at, expires_at = excluded.expires_at
WHERE idempotency_keys.expires_at <= excluded.created_at RETURNING caller, key

-- name: stored_answers
-- The answers stored under the keys $1 (callers) and $2 (keys).
SELECT caller, key, response FROM {schema}.idempotency_keys
WHERE (caller, key) IN (SELECT * FROM unnest($1::varchar[], $2::varchar[]))

-- name: notify
-- Wake a waiting relay when the transaction commits (none waits: nothing to do).
SELECT CASE WHEN pg_try_advisory_xact_lock_shared({wake_key}) THEN NULL
    ELSE pg_notify('{channel}', '') END

-- name: start_waiting
SELECT pg_try_advisory_lock({wake_key})

-- name: shared_available
-- Whether the key can be had shared (then let go at once): while writers are in flight it
-- can, while a relay waits it cannot.
SELECT CASE WHEN pg_try_advisory_lock_shared({wake_key})
    THEN pg_advisory_unlock_shared({wake_key}) ELSE false END

-- name: stop_waiting
SELECT pg_advisory_unlock({wake_key})

-- name: save_settings
-- The app settings document, the one row of its table.
INSERT INTO {schema}.app_settings (id, document, updated_at) VALUES (1, $1, $2)
ON CONFLICT (id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at

-- name: claim_due
-- Lease up to $2 due rows to $1 until $3: a row is free again when its lease ends (a relay
-- that dies gives its rows back so). The lease is only in columns no index holds, so the
-- update is a HOT one (on the row's page, no index touched) where the page has room;
-- SKIP LOCKED lets concurrent relays take disjoint batches.
UPDATE {schema}.outbox_events SET locked_by = $1, locked_until = $3
WHERE seq IN (SELECT seq FROM {schema}.outbox_events
    WHERE status = 'pending' AND next_attempt_at <= $4
        AND (locked_until IS NULL OR locked_until <= $4)
    ORDER BY next_attempt_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING seq, id, payload, attempts, created_at, first_failed_at, env, inngest_id,
    traceparent, tracestate

-- name: claim_early
-- As claim_due, the rows that fall due first even if they are not due yet, but none that a
-- relay holds: an outage's probe needs one row to ask Inngest with, now.
UPDATE {schema}.outbox_events SET locked_by = $1, locked_until = $3
WHERE seq IN (SELECT seq FROM {schema}.outbox_events
    WHERE status = 'pending' AND (locked_until IS NULL OR locked_until <= $4)
    ORDER BY next_attempt_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING seq, id, payload, attempts, created_at, first_failed_at, env, inngest_id,
    traceparent, tracestate

-- name: mark_delivered
-- Delivered, whoever holds the row now: it did reach Inngest.
UPDATE {schema}.outbox_events SET status = 'delivered', completed_at = $2,
    attempts = attempts + 1, locked_by = NULL, locked_until = NULL
WHERE seq = ANY ($1::bigint[]) AND status = 'pending'

-- name: retry_later
-- Each row ($1), if $5 still holds it, due again at its time ($2) after its error ($3); its
-- first failure is $4 unless it had failed before.
UPDATE {schema}.outbox_events AS o SET attempts = o.attempts + 1, next_attempt_at = r.at,
    last_error = r.error, first_failed_at = coalesce(o.first_failed_at, $4),
    locked_by = NULL, locked_until = NULL
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS r(seq, at, error)
WHERE o.seq = r.seq AND o.status = 'pending' AND o.locked_by = $5

-- name: bury
-- Each row ($1), if $4 still holds it, dead at $3 after its error ($2).
UPDATE {schema}.outbox_events AS o SET status = 'dead', attempts = o.attempts + 1,
    completed_at = $3, last_error = r.error, locked_by = NULL, locked_until = NULL
FROM unnest($1::bigint[], $2::text[]) AS r(seq, error)
WHERE o.seq = r.seq AND o.status = 'pending' AND o.locked_by = $4

-- name: release
-- Rows handed back untouched (attempts unchanged), due at $2, if $3 still holds them.
UPDATE {schema}.outbox_events SET next_attempt_at = $2, locked_by = NULL, locked_until = NULL
WHERE seq = ANY ($1::bigint[]) AND status = 'pending' AND locked_by = $3

-- name: send_event
-- The function apps call in their own transactions, as the Python helper calls it.
SELECT {schema}.send_event($1, $2::jsonb, $3::jsonb, $4, $5, $6)

-- name: size_limit
-- How large an event send_event takes (set from the settings by the migrations).
SELECT {schema}.event_max_bytes()

-- name: grant_sender_schema
GRANT USAGE ON SCHEMA {schema} TO {role}

-- name: grant_sender_function
-- The function apps call in their own transactions (its arguments' types name it), and its
-- size limit, which the Python helper checks an event against first.
GRANT EXECUTE ON FUNCTION {schema}.send_event(text, jsonb, jsonb, text, bigint, text),
    {schema}.event_max_bytes() TO {role}

-- name: event_max_bytes
-- Replace event_max_bytes(), where the schema has it (since the migration that made
-- send_event), by a function that answers {limit}.
DO $set$ BEGIN
    IF to_regprocedure('{schema_text}.event_max_bytes()') IS NOT NULL THEN
        EXECUTE 'CREATE OR REPLACE FUNCTION {schema_text}.event_max_bytes() RETURNS integer'
            ' LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $limit$ SELECT {limit} $limit$';
    END IF;
END $set$

-- Every statement the SQLite backend runs that SQLAlchemy Core does not write, by name.
-- sqlite3's named parameters (:name). What a statement takes many of comes as one JSON
-- array, a single parameter.

-- name: insert_events
-- The outbox INSERT. The rows come as one JSON array of arrays, each of the fields of
-- ``rows.OutboxRow`` in order ({row_items} names them); a shell's payload is head || the
-- settings document || tail, read by the same statement; a complete event's is its head. An
-- id stored already is left out; the answer is the ids stored. The WHERE is SQLite's way to
-- tell an upsert's ON CONFLICT from a join's ON.
INSERT INTO outbox_events (payload, status, attempts, next_attempt_at, {row_columns})
SELECT CASE WHEN e.tail IS NULL THEN e.head ELSE e.head || document.data || e.tail END,
    'pending', 0, e.created_at, {row_values}
FROM (SELECT coalesce((SELECT document FROM app_settings WHERE id = 1), '{}') AS data)
        AS document,
    (SELECT {row_items}, key AS position FROM json_each(:rows)) AS e
WHERE true ORDER BY e.position ON CONFLICT (id) DO NOTHING RETURNING id

-- name: claim_keys
-- Insert each idempotency key (a JSON array of ``batch_writes.Claim`` objects), or take over a
-- row whose time is up, in the order every writer takes keys; RETURNING names the keys that
-- are now ours.
INSERT INTO idempotency_keys (caller, key, event_id, response, created_at, expires_at)
SELECT json_extract(c.value, '$.caller'), json_extract(c.value, '$.key'),
    json_extract(c.value, '$.event_id'), json_extract(c.value, '$.response'),
    json_extract(c.value, '$.created_at'), json_extract(c.value, '$.expires_at')
FROM json_each(:claims) AS c
WHERE true ORDER BY 1, 2
ON CONFLICT (caller, key) DO UPDATE
SET event_id = excluded.event_id, response = excluded.response,
    created_at = excluded.created_at, expires_at = excluded.expires_at
WHERE idempotency_keys.expires_at <= excluded.created_at RETURNING caller, key

-- name: stored_answers
-- The answers stored under the keys of the claims (the same JSON array).
SELECT caller, key, response FROM idempotency_keys
WHERE (caller, key) IN (SELECT json_extract(c.value, '$.caller'), json_extract(c.value, '$.key')
    FROM json_each(:claims) AS c)

-- name: save_settings
-- The app settings document, the one row of its table.
INSERT INTO app_settings (id, document, updated_at) VALUES (1, :document, :now)
ON CONFLICT (id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at

-- name: claim_due
-- Lease up to :limit due rows to :relay until :until: a row is free again when its lease ends
-- (a relay that dies gives its rows back so). The lease is only in columns no index holds, so
-- no index changes. The statement takes SQLite's one write lock as it starts: claims are
-- serialized, and no row is leased twice.
UPDATE outbox_events SET locked_by = :relay, locked_until = :until
WHERE seq IN (SELECT seq FROM outbox_events
    WHERE status = 'pending' AND next_attempt_at <= :now
        AND (locked_until IS NULL OR locked_until <= :now)
    ORDER BY next_attempt_at, seq LIMIT :limit)
RETURNING seq, id, payload, attempts, created_at, first_failed_at, env, inngest_id,
    traceparent, tracestate

-- name: claim_early
-- As claim_due, the rows that fall due first even if they are not due yet, but none that a
-- relay holds: an outage's probe needs one row to ask Inngest with, now.
UPDATE outbox_events SET locked_by = :relay, locked_until = :until
WHERE seq IN (SELECT seq FROM outbox_events
    WHERE status = 'pending' AND (locked_until IS NULL OR locked_until <= :now)
    ORDER BY next_attempt_at, seq LIMIT :limit)
RETURNING seq, id, payload, attempts, created_at, first_failed_at, env, inngest_id,
    traceparent, tracestate

-- name: mark_delivered
-- Delivered, whoever holds the row now: it did reach Inngest.
UPDATE outbox_events SET status = 'delivered', completed_at = :now, attempts = attempts + 1,
    locked_by = NULL, locked_until = NULL
WHERE seq IN (SELECT value FROM json_each(:seqs)) AND status = 'pending'

-- name: retry_later
-- Each row, if :relay still holds it, due again at its time after its error.
UPDATE outbox_events SET attempts = attempts + 1, next_attempt_at = json_extract(r.value, '$.at'),
    last_error = json_extract(r.value, '$.error'), first_failed_at = coalesce(first_failed_at, :now),
    locked_by = NULL, locked_until = NULL
FROM json_each(:retries) AS r
WHERE outbox_events.seq = json_extract(r.value, '$.seq') AND status = 'pending' AND locked_by = :relay

-- name: bury
-- Each row, if :relay still holds it, dead after its error.
UPDATE outbox_events SET status = 'dead', attempts = attempts + 1, completed_at = :now,
    last_error = json_extract(r.value, '$.error'), locked_by = NULL, locked_until = NULL
FROM json_each(:burials) AS r
WHERE outbox_events.seq = json_extract(r.value, '$.seq') AND status = 'pending' AND locked_by = :relay

-- name: release
-- Rows handed back untouched (attempts unchanged), due at :until, if :relay still holds them.
UPDATE outbox_events SET next_attempt_at = :until, locked_by = NULL, locked_until = NULL
WHERE seq IN (SELECT value FROM json_each(:seqs)) AND status = 'pending' AND locked_by = :relay

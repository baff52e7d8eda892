-- Durable Pub/Sub channels: one append-only log per channel with dense
-- offsets from 1, and the committed offset of each subscriber per channel.
CREATE TABLE IF NOT EXISTS messages (
    channel         TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    message_id      TEXT NOT NULL,
    source          TEXT,
    payload         TEXT NOT NULL,
    published_at    INTEGER NOT NULL,
    correlation_id  TEXT,
    causation_id    TEXT,
    headers         TEXT NOT NULL,
    depth           INTEGER NOT NULL,
    PRIMARY KEY (channel, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS message_offsets (
    channel     TEXT NOT NULL,
    subscriber  TEXT NOT NULL,
    committed   INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (channel, subscriber)
) WITHOUT ROWID;

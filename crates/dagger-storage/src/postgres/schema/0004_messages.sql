-- Durable Pub/Sub channels: one append-only log per channel with dense
-- offsets from 1, and the committed offset of each subscriber per channel.
--
-- `message_channels` holds each channel's last offset. An append bumps it
-- (taking its row lock) and inserts its messages in one statement, so
-- appenders of one channel commit in offset order: a reader never sees an
-- offset while a lower one is still uncommitted, and replaying from an
-- offset never skips a message that commits later.
CREATE TABLE message_channels (
    channel      TEXT PRIMARY KEY,
    last_offset  BIGINT NOT NULL
);

CREATE TABLE messages (
    channel         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    message_id      TEXT NOT NULL,
    source          TEXT,
    payload         TEXT NOT NULL,
    published_at    BIGINT NOT NULL,
    correlation_id  TEXT,
    causation_id    TEXT,
    headers         TEXT NOT NULL,
    depth           BIGINT NOT NULL,
    PRIMARY KEY (channel, seq)
);

CREATE TABLE message_offsets (
    channel     TEXT NOT NULL,
    subscriber  TEXT NOT NULL,
    committed   BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (channel, subscriber)
);

-- The node work queue: DAG node attempts a coordinator hands to worker processes.
CREATE TABLE node_queue (
    item_id           TEXT PRIMARY KEY,
    -- Claim order (FIFO).
    seq               BIGINT GENERATED ALWAYS AS IDENTITY,
    run_id            TEXT NOT NULL,
    action            TEXT NOT NULL,
    -- The work item as JSON.
    item              TEXT NOT NULL,
    -- queued, claimed, done.
    state             TEXT NOT NULL,
    -- Claims so far: the current claim's fencing token.
    token             BIGINT NOT NULL DEFAULT 0,
    worker            TEXT,
    lease_expires_at  BIGINT,
    -- The result as JSON once done.
    result            TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
-- Claim candidates by action, oldest first; finished items are not candidates.
CREATE INDEX node_queue_open ON node_queue (action, seq) WHERE state <> 'done';
CREATE INDEX node_queue_by_run ON node_queue (run_id);

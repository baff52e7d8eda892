-- Idempotency keys of runs: a key names one run of its workflow. The
-- primary key makes a start under a taken key lose atomically; a singleton
-- start re-binds the key to a new run with a compare-and-set on `run_id`.
CREATE TABLE flow_run_keys (
    workflow   TEXT NOT NULL,
    key        TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workflow, key)
);

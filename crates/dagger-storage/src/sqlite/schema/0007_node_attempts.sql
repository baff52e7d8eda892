-- Every ended attempt of every node (node_runs keeps only the latest):
-- outcome, error, a failure's detail or the success's output artifact, and
-- what the attempt wrote (`logs`: JSON of log lines and captured stdout and
-- stderr, each bounded; NULL when it wrote nothing). Deleted with the run.
CREATE TABLE node_attempts (
    run_id              TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
    node_id             TEXT NOT NULL,
    invocation_key      TEXT NOT NULL DEFAULT '',
    attempt             INTEGER NOT NULL,
    action              TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    error               TEXT,
    output              TEXT,
    output_artifact_id  TEXT,
    started_at          INTEGER NOT NULL,
    finished_at         INTEGER NOT NULL,
    logs                TEXT,
    PRIMARY KEY (run_id, node_id, invocation_key, attempt)
);

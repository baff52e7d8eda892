-- DAG Flow runs, node executions, control requests, artifacts and cache snapshots.
CREATE TABLE flow_runs (
    run_id       TEXT PRIMARY KEY,
    workflow     TEXT NOT NULL,
    definition   TEXT NOT NULL,
    inputs       TEXT NOT NULL,
    config       TEXT NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX flow_runs_by_created ON flow_runs (created_at DESC);
CREATE INDEX flow_runs_by_workflow ON flow_runs (workflow, created_at DESC);
CREATE INDEX flow_runs_by_status ON flow_runs (status, created_at DESC);

CREATE TABLE artifacts (
    artifact_id  TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    inline_data  BLOB,
    file_path    TEXT,
    created_at   INTEGER NOT NULL
);

CREATE TABLE node_runs (
    run_id              TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
    node_id             TEXT NOT NULL,
    invocation_key      TEXT NOT NULL DEFAULT '',
    action              TEXT NOT NULL,
    attempt             INTEGER NOT NULL,
    state               TEXT NOT NULL,
    input_hash          TEXT,
    output_artifact_id  TEXT REFERENCES artifacts (artifact_id),
    error               TEXT,
    started_at          INTEGER,
    finished_at         INTEGER,
    metadata            TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, node_id, invocation_key)
);
CREATE INDEX node_runs_memo ON node_runs (action, input_hash) WHERE state = 'Completed';

CREATE TABLE run_controls (
    run_id   TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    request  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE cache_snapshots (
    scope      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    namespace  TEXT,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, seq)
);

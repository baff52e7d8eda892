-- DAG Flow runs, node executions, control requests, artifacts and cache snapshots.
-- JSON columns are TEXT so values round-trip byte for byte, as in SQLite.
CREATE TABLE flow_runs (
    run_id       TEXT PRIMARY KEY,
    -- Breaks ties between runs created in the same millisecond, newest first.
    seq          BIGINT GENERATED ALWAYS AS IDENTITY,
    workflow     TEXT NOT NULL,
    definition   TEXT NOT NULL,
    inputs       TEXT NOT NULL,
    config       TEXT NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX flow_runs_by_created ON flow_runs (created_at DESC, seq DESC);
CREATE INDEX flow_runs_by_workflow ON flow_runs (workflow, created_at DESC, seq DESC);
CREATE INDEX flow_runs_by_status ON flow_runs (status, created_at DESC, seq DESC);

-- Content-addressed blobs of any size (bytea is TOASTed out of line and
-- compressed when large; one value may hold up to 1 GiB).
CREATE TABLE artifacts (
    artifact_id  TEXT PRIMARY KEY,
    size         BIGINT NOT NULL,
    data         BYTEA NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE node_runs (
    run_id              TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
    node_id             TEXT NOT NULL,
    invocation_key      TEXT NOT NULL DEFAULT '',
    action              TEXT NOT NULL,
    attempt             BIGINT NOT NULL,
    state               TEXT NOT NULL,
    input_hash          TEXT,
    output_artifact_id  TEXT REFERENCES artifacts (artifact_id),
    error               TEXT,
    started_at          BIGINT,
    finished_at         BIGINT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, node_id, invocation_key)
);
CREATE INDEX node_runs_memo ON node_runs (action, input_hash) WHERE state = 'Completed';

CREATE TABLE run_controls (
    run_id     TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    request    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE cache_snapshots (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    namespace  TEXT,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX cache_snapshots_by_scope ON cache_snapshots (scope, seq);

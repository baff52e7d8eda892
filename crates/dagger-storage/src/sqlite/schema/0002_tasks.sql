-- Task Agent jobs, tasks, dependencies and per-status counts (dagger-task-core).
CREATE TABLE task_jobs (
    job_id          TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    allowed_agents  TEXT,
    config          TEXT NOT NULL,
    started         INTEGER NOT NULL,
    reason          TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX task_jobs_by_status ON task_jobs (status, created_at);

CREATE TABLE tasks (
    task_id              TEXT PRIMARY KEY,
    job_id               TEXT NOT NULL REFERENCES task_jobs (job_id) DEFERRABLE INITIALLY DEFERRED,
    parent_id            TEXT,
    task_type            TEXT NOT NULL,
    agent                TEXT NOT NULL,
    description          TEXT NOT NULL,
    acceptance_criteria  TEXT,
    input                TEXT NOT NULL,
    -- JSON array of dependency ids in the order added (task_dependencies
    -- holds the same edges, indexed for finding dependents).
    dependencies         TEXT NOT NULL,
    output               TEXT,
    error                TEXT,
    priority             INTEGER NOT NULL,
    seq                  INTEGER NOT NULL,
    status               TEXT NOT NULL,
    attempts             INTEGER NOT NULL,
    failures             INTEGER NOT NULL,
    max_retries          INTEGER,
    timeout_ms           INTEGER,
    lease_owner          TEXT,
    lease_expires_at     INTEGER,
    not_before           INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    started_at           INTEGER,
    finished_at          INTEGER
);
CREATE INDEX tasks_by_job ON tasks (job_id, seq);
CREATE INDEX tasks_ready ON tasks (job_id, priority DESC, seq) WHERE status = 'Ready';
CREATE INDEX tasks_leases ON tasks (job_id, lease_expires_at) WHERE status = 'InProgress';
CREATE INDEX tasks_delayed ON tasks (job_id, not_before) WHERE status = 'Ready' AND not_before IS NOT NULL;

CREATE TABLE task_dependencies (
    task_id        TEXT NOT NULL REFERENCES tasks (task_id) DEFERRABLE INITIALLY DEFERRED,
    dependency_id  TEXT NOT NULL REFERENCES tasks (task_id) DEFERRABLE INITIALLY DEFERRED,
    position       INTEGER NOT NULL,
    PRIMARY KEY (task_id, dependency_id)
);
CREATE INDEX task_dependents ON task_dependencies (dependency_id);

-- Tasks per job and status, kept by every write, so completion and stall
-- checks do not scan a job's tasks.
CREATE TABLE task_counts (
    job_id  TEXT NOT NULL,
    status  TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (job_id, status)
);

CREATE TABLE task_seq (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    next  INTEGER NOT NULL
);
INSERT INTO task_seq (id, next) VALUES (1, 0);

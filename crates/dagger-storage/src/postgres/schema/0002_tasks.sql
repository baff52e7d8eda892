-- Task Agent jobs, tasks, dependencies and per-status counts.
CREATE TABLE task_jobs (
    job_id          TEXT PRIMARY KEY,
    -- Breaks ties between jobs created in the same millisecond.
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    status          TEXT NOT NULL,
    allowed_agents  TEXT,
    config          TEXT NOT NULL,
    started         BOOLEAN NOT NULL,
    reason          TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX task_jobs_by_status ON task_jobs (status, created_at, seq);

CREATE TABLE tasks (
    task_id              TEXT PRIMARY KEY,
    job_id               TEXT NOT NULL REFERENCES task_jobs (job_id) DEFERRABLE INITIALLY DEFERRED,
    parent_id            TEXT,
    task_type            TEXT NOT NULL,
    agent                TEXT NOT NULL,
    description          TEXT NOT NULL,
    acceptance_criteria  TEXT,
    input                TEXT NOT NULL,
    output               TEXT,
    error                TEXT,
    priority             INTEGER NOT NULL,
    seq                  BIGINT NOT NULL,
    status               TEXT NOT NULL,
    attempts             BIGINT NOT NULL,
    failures             BIGINT NOT NULL,
    max_retries          BIGINT,
    timeout_ms           BIGINT,
    lease_owner          TEXT,
    lease_expires_at     BIGINT,
    not_before           BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    started_at           BIGINT,
    finished_at          BIGINT
);
CREATE INDEX tasks_by_job ON tasks (job_id, seq);
CREATE INDEX tasks_ready ON tasks (job_id, priority DESC, seq) WHERE status = 'Ready';
CREATE INDEX tasks_leases ON tasks (job_id, lease_expires_at) WHERE status = 'InProgress';
CREATE INDEX tasks_delayed ON tasks (job_id, not_before) WHERE status = 'Ready' AND not_before IS NOT NULL;

CREATE TABLE task_dependencies (
    task_id        TEXT NOT NULL REFERENCES tasks (task_id) DEFERRABLE INITIALLY DEFERRED,
    dependency_id  TEXT NOT NULL REFERENCES tasks (task_id) DEFERRABLE INITIALLY DEFERRED,
    position       BIGINT NOT NULL,
    PRIMARY KEY (task_id, dependency_id)
);
CREATE INDEX task_dependents ON task_dependencies (dependency_id);

-- Tasks per job and status, kept by every write, so completion and stall
-- checks do not scan a job's tasks.
CREATE TABLE task_counts (
    job_id  TEXT NOT NULL,
    status  TEXT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (job_id, status)
);

-- Insertion order of tasks; a sequence takes no row lock, so inserts of
-- different jobs never wait on each other.
CREATE SEQUENCE task_seq;

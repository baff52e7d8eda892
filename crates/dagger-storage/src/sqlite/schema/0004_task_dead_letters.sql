-- Task Agent: every failed attempt's error (dead letters) and per-agent
-- circuit breakers (dagger-task-core).
CREATE TABLE task_attempt_errors (
    task_id  TEXT NOT NULL,
    job_id   TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    error    TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX task_attempt_errors_by_task ON task_attempt_errors (task_id, seq);
CREATE INDEX tasks_failed ON tasks (job_id, seq) WHERE status = 'Failed';

CREATE TABLE task_breakers (
    agent                 TEXT PRIMARY KEY,
    state                 TEXT NOT NULL,
    consecutive_failures  INTEGER NOT NULL,
    until                 INTEGER,
    last_error            TEXT,
    updated_at            INTEGER NOT NULL
);

-- Task Agent: every failed attempt's error (dead letters) and per-agent
-- circuit breakers (dagger-task-core).
CREATE TABLE task_attempt_errors (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id  TEXT NOT NULL,
    job_id   TEXT NOT NULL,
    attempt  BIGINT NOT NULL,
    error    TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX task_attempt_errors_by_task ON task_attempt_errors (task_id, seq);
CREATE INDEX tasks_failed ON tasks (job_id, seq) WHERE status = 'Failed';

CREATE TABLE task_breakers (
    agent                 TEXT PRIMARY KEY,
    state                 TEXT NOT NULL,
    consecutive_failures  BIGINT NOT NULL,
    until                 BIGINT,
    last_error            TEXT,
    updated_at            BIGINT NOT NULL
);

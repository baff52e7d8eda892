-- Run ownership: the process executing a run holds it with a lease it
-- renews; another process may take the run over only once the lease
-- lapsed. `owner_token` (the fencing token) grows with every claim and is
-- kept when the owner releases the run, so a stale owner is always refused.
ALTER TABLE flow_runs
    ADD COLUMN owner_id TEXT,
    ADD COLUMN owner_host TEXT,
    ADD COLUMN owner_pid BIGINT,
    ADD COLUMN owner_token BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN lease_expires_at BIGINT;

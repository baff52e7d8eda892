-- Run ownership: the process executing a run holds it with a lease it
-- renews; another process may take the run over only once the lease
-- lapsed. `owner_token` (the fencing token) grows with every claim and is
-- kept when the owner releases the run, so a stale owner is always refused.
ALTER TABLE flow_runs ADD COLUMN owner_id TEXT;
ALTER TABLE flow_runs ADD COLUMN owner_host TEXT;
ALTER TABLE flow_runs ADD COLUMN owner_pid INTEGER;
ALTER TABLE flow_runs ADD COLUMN owner_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flow_runs ADD COLUMN lease_expires_at INTEGER;

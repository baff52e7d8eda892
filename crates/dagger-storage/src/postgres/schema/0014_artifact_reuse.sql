-- When an existing artifact was last stored again (ms since the epoch, the
-- server's clock; NULL: never since it was created). `Retention::prune`
-- keeps an artifact stored again within its grace period before the prune
-- began, so a run recording that output while the prune runs never points
-- at a removed artifact.
ALTER TABLE artifacts ADD COLUMN reused_at BIGINT;

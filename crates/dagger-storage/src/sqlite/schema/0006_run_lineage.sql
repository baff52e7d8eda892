-- Run lineage: a re-run (`dagger rerun`, `Coordinator::rerun`) records the
-- run it re-ran and the node it was forked from; the index answers "which
-- runs were forked from this one".
ALTER TABLE flow_runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE flow_runs ADD COLUMN forked_from_node TEXT;
CREATE INDEX flow_runs_by_parent ON flow_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

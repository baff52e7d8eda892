-- The memo index holds only the rows a memo lookup can find: completed
-- nodes with an input hash (nodes with `cache: true`). Before, every
-- completed node added an entry under a NULL hash, and that entry was a
-- fifth of SQLite's work per recorded completion. `find_memoized` asks for
-- `input_hash = ?`, which implies `input_hash IS NOT NULL`, so the planner
-- still uses the index.
DROP INDEX node_runs_memo;
CREATE INDEX node_runs_memo ON node_runs (action, input_hash)
    WHERE state = 'Completed' AND input_hash IS NOT NULL;

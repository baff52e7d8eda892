-- The memo index holds only the rows a memo lookup can find: completed
-- nodes with an input hash (nodes with `cache: true`), as SQLite's 0009.
-- `find_memoized` asks for `input_hash = $2`, which implies
-- `input_hash IS NOT NULL`, so the planner can still use the index.
DROP INDEX node_runs_memo;
CREATE INDEX node_runs_memo ON node_runs (action, input_hash)
    WHERE state = 'Completed' AND input_hash IS NOT NULL;

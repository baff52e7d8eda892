-- Signals sent to runs (`dagger signal`, docs/signals.md). A signal is kept
-- with its run, so one sent before a node waits for it, or while no process
-- runs the run, is delivered when a node waits. `seq` numbers the signals of
-- a run from 1; which node took a signal is in that node's record.
CREATE TABLE run_signals (
    run_id     TEXT NOT NULL REFERENCES flow_runs (run_id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    name       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Schedule state shared by every scheduler of the store: a paused override
-- (`dagger schedule pause|resume`; NULL: the definition decides) and the
-- definitions of schedules added to the store (`dagger schedule add`; the
-- JSON of a `schedules:` entry, NULL for a schedule declared in a file).
CREATE TABLE schedule_states (
    name       TEXT PRIMARY KEY,
    workflow   TEXT,
    spec       TEXT,
    paused     INTEGER,
    updated_at INTEGER NOT NULL
);

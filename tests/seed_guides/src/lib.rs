//! The seed guides' code blocks live in `tests/`, one test per guide section,
//! each named after its section; `docs/seed-guide.md` maps sections to tests
//! and to the primary API. This library is empty.

//! Storage locations: `sqlite:path`, `sqlite://path`, `sqlite::memory:`.

use dagger_core::StoreError;
use std::path::PathBuf;

/// Where a SQLite store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    /// A database file.
    File(PathBuf),
    /// A private database that disappears when the store is dropped.
    Memory,
}

impl SqliteLocation {
    /// Parses `sqlite:path`, `sqlite://path`, `sqlite::memory:`, or a bare path.
    pub fn parse(location: &str) -> Result<Self, StoreError> {
        let rest = location.strip_prefix("sqlite:").unwrap_or(location);
        if rest == ":memory:" || rest == "//:memory:" {
            return Ok(Self::Memory);
        }
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(StoreError::InvalidLocation {
                location: location.to_string(),
                reason: "no file path after `sqlite:`".into(),
            });
        }
        if location.contains("://") && !location.starts_with("sqlite://") {
            return Err(StoreError::InvalidLocation {
                location: location.to_string(),
                reason: "not a sqlite location (expected `sqlite:path` or `sqlite::memory:`)"
                    .into(),
            });
        }
        Ok(Self::File(PathBuf::from(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(
            SqliteLocation::parse("sqlite::memory:").unwrap(),
            SqliteLocation::Memory
        );
        assert_eq!(
            SqliteLocation::parse("sqlite:a/b.db").unwrap(),
            SqliteLocation::File("a/b.db".into())
        );
        assert_eq!(
            SqliteLocation::parse("sqlite:///tmp/x.db").unwrap(),
            SqliteLocation::File("/tmp/x.db".into())
        );
        assert_eq!(
            SqliteLocation::parse("w.db").unwrap(),
            SqliteLocation::File("w.db".into())
        );
        assert!(matches!(
            SqliteLocation::parse("sqlite:"),
            Err(StoreError::InvalidLocation { .. })
        ));
        assert!(matches!(
            SqliteLocation::parse("postgres://x"),
            Err(StoreError::InvalidLocation { .. })
        ));
    }
}

use crate::error::StoreError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The content address of an artifact: the lowercase hex BLAKE3 hash of its bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArtifactId(String);

impl ArtifactId {
    /// The id of these bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(blake3::hash(bytes).to_hex().to_string())
    }

    /// Wraps a stored id (no check is made).
    pub fn from_hex(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactId({})", &self.0)
    }
}

/// Content-addressed blobs (node outputs, large payloads).
#[async_trait::async_trait]
pub trait ArtifactStore: Send + Sync + 'static {
    /// Stores bytes and returns their content address; storing the same bytes twice is free.
    async fn put_artifact(&self, bytes: Vec<u8>) -> Result<ArtifactId, StoreError>;
    /// Reads an artifact; a missing or corrupted one is a typed error naming it.
    async fn get_artifact(&self, id: &ArtifactId) -> Result<Vec<u8>, StoreError>;
}

//! [`ArtifactStore`] over SQLite: content-addressed (BLAKE3) blobs, kept
//! inline in the `artifacts` table under [`INLINE_LIMIT`] bytes and as files
//! under `<db>.artifacts/<first two hex digits>/<id>` from that size up.
//!
//! A file is written atomically before its row is queued: temporary file,
//! fsync, rename, fsync of the directory. The writer commits in order, so a
//! row (and any node run pointing at it) is never on disk without its file.
//! A full disk at any step is `DiskFull` naming the database and the file,
//! and leaves no file (nor temporary copy) behind. Every read checks the content against its hash.

use crate::sqlite::{ErrorMapper, SqliteStore};
use dagger_core::StoreError;
use dagger_core::store::{ArtifactId, ArtifactStore, Durability};
use rusqlite::{OptionalExtension, params};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Artifacts of this many bytes or more are stored as files.
pub const INLINE_LIMIT: usize = 32 * 1024;

/// Where an artifact's file lives, relative to the artifact directory.
fn relative_path(id: &ArtifactId) -> PathBuf {
    let hex = id.as_str();
    let shard = hex.get(..2).unwrap_or("00");
    Path::new(shard).join(hex)
}

/// True when `path` holds exactly `bytes` (a previous put of the same content).
fn holds(path: &Path, id: &ArtifactId, len: usize) -> bool {
    match fs::metadata(path) {
        Ok(meta) if meta.len() == len as u64 => {
            fs::read(path).is_ok_and(|existing| ArtifactId::of(&existing) == *id)
        }
        _ => false,
    }
}

/// Whether `e` says the file system (or the user's quota) is full.
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
}

/// Maps the error of an I/O step on `file` of the store at `location`: no
/// space left is [`StoreError::DiskFull`] naming the database and the file,
/// anything else [`StoreError::Io`] with `context`.
fn file_error<'a>(
    location: &'a str,
    file: &'a Path,
    context: impl FnOnce() -> String + 'a,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| {
        if is_no_space(&source) {
            StoreError::DiskFull {
                location: location.to_string(),
                file: Some(file.display().to_string()),
            }
        } else {
            StoreError::Io {
                context: context(),
                source,
            }
        }
    }
}

/// Writes `bytes` to `path` so that `path` either does not exist or holds
/// all of them: temporary file, fsync, rename, fsync of the directory. A
/// full disk at any step is [`StoreError::DiskFull`] naming `location` and
/// `path`, with the temporary file removed.
fn write_atomically(
    location: &str,
    path: &Path,
    bytes: &[u8],
    sync: bool,
) -> Result<(), StoreError> {
    let dir = path.parent().ok_or_else(|| StoreError::Io {
        context: format!("artifact path `{}` has no directory", path.display()),
        source: std::io::Error::from(ErrorKind::InvalidInput),
    })?;
    if !dir.is_dir() {
        // The shard and possibly the artifact root are new: their entries in
        // their parents must be made durable too.
        let new_dirs: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
        fs::create_dir_all(dir).map_err(file_error(location, dir, || {
            format!("creating directory `{}`", dir.display())
        }))?;
        if sync {
            for new in new_dirs {
                if let Some(parent) = new.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(location, parent)?;
                }
            }
        }
    }
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(file_error(location, path, || {
            format!("creating `{}`", tmp.display())
        }))?;
        file.write_all(bytes)
            .map_err(file_error(location, path, || {
                format!("writing `{}`", tmp.display())
            }))?;
        if sync {
            file.sync_all().map_err(file_error(location, path, || {
                format!("syncing `{}`", tmp.display())
            }))?;
        }
        fs::rename(&tmp, path).map_err(file_error(location, path, || {
            format!("renaming `{}` to `{}`", tmp.display(), path.display())
        }))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if sync {
        sync_dir(location, dir)?;
    }
    Ok(())
}

fn sync_dir(location: &str, dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(file_error(location, dir, || {
            format!("syncing directory `{}`", dir.display())
        }))
}

/// Checks that `bytes` read from `path` are the artifact `id`.
fn verify(id: &ArtifactId, path: &str, bytes: &[u8], size: i64) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::CorruptArtifact {
        id: id.to_string(),
        path: path.to_string(),
        reason,
    };
    if i64::try_from(bytes.len()).ok() != Some(size) {
        return Err(corrupt(format!(
            "{} bytes instead of the {size} recorded",
            bytes.len()
        )));
    }
    let actual = ArtifactId::of(bytes);
    if actual != *id {
        return Err(corrupt(format!("content hashes to {actual}")));
    }
    Ok(())
}

/// Inserts an artifact kept inline (under [`INLINE_LIMIT`] bytes), in one
/// statement; nothing happens when it is already there.
pub(crate) fn insert_inline_artifact(
    tx: &rusqlite::Connection,
    id: &ArtifactId,
    bytes: &[u8],
    store: &ErrorMapper,
) -> Result<(), StoreError> {
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO artifacts (artifact_id, size, inline_data, file_path, created_at) \
         VALUES (?1, ?2, ?3, NULL, ?4) ON CONFLICT DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![id.as_str(), size, bytes, dagger_core::now_millis()]))
    .map(drop)
    .map_err(|e| store.map_err(e))
}

impl SqliteStore {
    /// The directory holding artifacts of [`INLINE_LIMIT`] bytes or more.
    pub fn artifact_dir(&self) -> &Path {
        &self.inner.artifact_dir
    }

    /// The file an artifact of [`INLINE_LIMIT`] bytes or more is stored in
    /// (whether or not it exists).
    pub fn artifact_path(&self, id: &ArtifactId) -> PathBuf {
        self.inner.artifact_dir.join(relative_path(id))
    }
}

#[async_trait::async_trait]
impl ArtifactStore for SqliteStore {
    async fn put_artifact(&self, bytes: Vec<u8>) -> Result<ArtifactId, StoreError> {
        let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        let store = self.error_mapper();
        if bytes.len() < INLINE_LIMIT {
            let id = ArtifactId::of(&bytes);
            let key = id.clone();
            self.write_durable_statement(move |tx| {
                insert_inline_artifact(tx, &key, &bytes, &store)
            })
            .await?;
            return Ok(id);
        }

        let sync = self.durability() != Durability::Memory;
        let dir = self.inner.artifact_dir.clone();
        let location = self.location().to_string();
        let (id, relative) = tokio::task::spawn_blocking(move || {
            let id = ArtifactId::of(&bytes);
            let relative = relative_path(&id);
            let path = dir.join(&relative);
            if !holds(&path, &id, bytes.len()) {
                write_atomically(&location, &path, &bytes, sync)?;
            }
            Ok::<_, StoreError>((id, relative))
        })
        .await
        .map_err(|e| StoreError::Backend {
            location: self.location().to_string(),
            message: format!("artifact writer task failed: {e}"),
        })??;
        let key = id.clone();
        self.write_durable_statement(move |tx| {
            tx.prepare_cached(
                "INSERT INTO artifacts (artifact_id, size, inline_data, file_path, created_at) \
                 VALUES (?1, ?2, NULL, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.as_str(),
                    size,
                    relative.to_string_lossy(),
                    dagger_core::now_millis()
                ])
            })
            .map(drop)
            .map_err(|e| store.map_err(e))
        })
        .await?;
        Ok(id)
    }

    async fn get_artifact(&self, id: &ArtifactId) -> Result<Vec<u8>, StoreError> {
        let id = id.clone();
        let store = self.clone();
        self.read(move |c| {
            let row: Option<(i64, Option<Vec<u8>>, Option<String>)> = c
                .prepare_cached(
                    "SELECT size, inline_data, file_path FROM artifacts WHERE artifact_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .map_err(|e| store.map_err(e))?;
            let location = store.location();
            match row {
                None => Err(StoreError::MissingArtifact {
                    id: id.to_string(),
                    path: format!("{location} (no record)"),
                }),
                Some((size, Some(bytes), _)) => {
                    verify(&id, &format!("{location} (inline)"), &bytes, size)?;
                    Ok(bytes)
                }
                Some((size, None, Some(relative))) => {
                    let path = store.inner.artifact_dir.join(relative);
                    let shown = path.display().to_string();
                    let bytes = fs::read(&path).map_err(|source| {
                        if source.kind() == ErrorKind::NotFound {
                            StoreError::MissingArtifact {
                                id: id.to_string(),
                                path: shown.clone(),
                            }
                        } else {
                            StoreError::Io {
                                context: format!("reading artifact {id} at `{shown}`"),
                                source,
                            }
                        }
                    })?;
                    verify(&id, &shown, &bytes, size)?;
                    Ok(bytes)
                }
                Some((_, None, None)) => Err(StoreError::CorruptArtifact {
                    id: id.to_string(),
                    path: location.to_string(),
                    reason: "the record has neither inline data nor a file".into(),
                }),
            }
        })
        .await
    }
}

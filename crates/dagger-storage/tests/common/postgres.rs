//! Fresh Postgres stores for tests: each test gets its own schema, so tests
//! run in parallel and repeatedly against one server.

use dagger_storage::{PostgresOptions, PostgresStore};
use std::sync::atomic::{AtomicU32, Ordering};

/// The server the tests use.
pub(crate) fn url() -> String {
    std::env::var("DAGGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema name unique to this process, test and call.
pub(crate) fn unique_schema(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t_{test}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// True when server tests may be skipped (`DAGGER_TEST_SKIP_SERVERS=1`).
pub(crate) fn skip_servers() -> bool {
    std::env::var("DAGGER_TEST_SKIP_SERVERS").is_ok_and(|v| v == "1")
}

/// A store in a fresh schema, or `None` (after saying why) when the server
/// is unreachable and `DAGGER_TEST_SKIP_SERVERS=1`. Without that variable an
/// unreachable server fails the test with a message naming the URL.
pub(crate) async fn fresh_store(test: &str) -> Option<PostgresStore> {
    let options = PostgresOptions {
        schema: Some(unique_schema(test)),
        ..PostgresOptions::default()
    };
    let url = url();
    reachable(test, &url, PostgresStore::connect_with(&url, options).await)
}

/// A store on `schema` (created if missing) opened from a plain thread, or
/// `None` as for [`fresh_store`].
pub(crate) fn open_blocking(schema: &str) -> Option<PostgresStore> {
    let options = PostgresOptions {
        schema: Some(schema.to_string()),
        ..PostgresOptions::default()
    };
    let url = url();
    reachable(
        schema,
        &url,
        PostgresStore::connect_blocking(&url, &options),
    )
}

/// The store, or `None` (saying why) for an unreachable server when servers
/// may be skipped; otherwise an unreachable server fails the test.
fn reachable(
    test: &str,
    url: &str,
    connected: Result<PostgresStore, dagger_core::StoreError>,
) -> Option<PostgresStore> {
    match connected {
        Ok(store) => Some(store),
        Err(e) if skip_servers() => {
            eprintln!(
                "skipping `{test}`: PostgreSQL at {url} is unreachable ({e}) and DAGGER_TEST_SKIP_SERVERS=1"
            );
            None
        }
        Err(e) => panic!(
            "PostgreSQL at {url} is unreachable: {e}\n\
             (start it, point DAGGER_TEST_POSTGRES_URL at another server, or set DAGGER_TEST_SKIP_SERVERS=1 to skip)"
        ),
    }
}

/// Drops `store`'s schema from a plain thread (the end of a `#[test]`).
pub(crate) fn drop_schema_blocking(store: PostgresStore) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime to drop the schema on");
    if let Err(e) = rt.block_on(store.drop_schema()) {
        panic!("dropping the test schema: {e}");
    }
}

/// Runs SQL with `psql` in `schema` (to tamper with rows behind the store's back).
pub(crate) fn psql(schema: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .arg(url())
        .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c"])
        .arg(format!("SET search_path TO {schema}; {sql}"))
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A second store (its own pool, so other sessions) on `store`'s schema, as
/// another worker process would open it.
pub(crate) async fn same_schema(store: &PostgresStore) -> PostgresStore {
    let options = PostgresOptions {
        schema: store.schema().map(str::to_string),
        ..PostgresOptions::default()
    };
    PostgresStore::connect_with(&url(), options).await.unwrap()
}

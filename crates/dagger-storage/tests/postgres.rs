//! Postgres-specific behaviour: connection errors naming the URL, versioned
//! migrations under concurrency, a newer schema refused, tampered artifacts
//! detected. The shared store behaviour is in `conformance.rs`.
#![cfg(feature = "postgres")]

mod common;

use common::postgres::{fresh_store, psql, unique_schema, url};
use dagger_core::store::ArtifactStore;
use dagger_core::store::{ArtifactId, NodeRunRecord, RunStore};
use dagger_core::{NodeStatus, RunId, RunStatus, StoreError};
use dagger_storage::postgres::latest_pg_version;
use dagger_storage::{PostgresOptions, PostgresStore};

fn with_schema(schema: &str) -> PostgresOptions {
    PostgresOptions {
        schema: Some(schema.to_string()),
        ..PostgresOptions::default()
    }
}

#[tokio::test]
async fn unreachable_server_is_an_open_error_naming_the_url() {
    let url = "postgres://postgres@127.0.0.1:1/test";
    let err = PostgresStore::connect(url).await.unwrap_err();
    match &err {
        StoreError::Open { location, reason } => {
            assert_eq!(location, url);
            assert!(reason.contains("Connection refused"), "{reason}");
        }
        other => panic!("expected Open, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("cannot open database `postgres://postgres@127.0.0.1:1/test`: "),
        "{err}"
    );
}

#[tokio::test]
async fn passwords_never_appear_in_errors() {
    let err = PostgresStore::connect("postgres://postgres:s3cret@127.0.0.1:1/test")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        text.contains("postgres://postgres:***@127.0.0.1:1/test"),
        "{text}"
    );
}

#[tokio::test]
async fn malformed_locations_are_invalid_location_errors() {
    let err = PostgresStore::connect("mysql://root@localhost/db")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidLocation { location, reason }
            if location == "mysql://root@localhost/db" && reason.contains("postgres://")),
        "{err:?}"
    );
    let err = PostgresStore::connect("postgres://h:notaport/db")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidLocation { location, .. } if location == "postgres://h:notaport/db"),
        "{err:?}"
    );
    let err = PostgresStore::connect_with(&url(), with_schema("Robert'); DROP"))
        .await
        .unwrap_err();
    match &err {
        StoreError::InvalidLocation { reason, .. } => {
            assert!(reason.contains("schema `Robert'); DROP`"), "{reason}")
        }
        other => panic!("expected InvalidLocation, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_database_is_an_open_error() {
    let Some(probe) = fresh_store("unknown_db_probe").await else {
        return;
    };
    probe.drop_schema().await.unwrap();
    let base = url();
    let (server, _) = base.rsplit_once('/').expect("URL has a database");
    let missing = format!("{server}/dagger_no_such_database");
    let err = PostgresStore::connect(&missing).await.unwrap_err();
    match &err {
        StoreError::Open { location, reason } => {
            assert_eq!(*location, missing);
            assert!(reason.contains("dagger_no_such_database"), "{reason}");
        }
        other => panic!("expected Open, got {other:?}"),
    }
}

#[tokio::test]
async fn migrations_are_recorded_with_version_and_name() {
    let Some(store) = fresh_store("migrations").await else {
        return;
    };
    let schema = store.schema().unwrap().to_string();
    let rows = psql(
        &schema,
        "SELECT version || ':' || name FROM dagger_schema_migrations ORDER BY version",
    );
    let first = rows.lines().next().unwrap_or_default();
    assert_eq!(first, "1:runs, node runs, artifacts, cache snapshots");
    assert_eq!(rows.lines().count() as i64, latest_pg_version());
    store.drop_schema().await.unwrap();
}

/// The memo lookup can go through the partial index, and completed nodes
/// without an input hash have no entries in it (migration 10): with
/// sequential scans off, a lookup by hash uses it, and a scan of every
/// completed node cannot.
#[tokio::test]
async fn memo_index_serves_the_lookup_and_skips_unhashed_rows() {
    let Some(store) = fresh_store("memo_index").await else {
        return;
    };
    let schema = store.schema().unwrap().to_string();
    let plan = |sql: &str| psql(&schema, &format!("SET enable_seqscan = off; EXPLAIN {sql}"));
    let lookup = plan(
        "SELECT output_artifact_id FROM node_runs \
         WHERE action = 'noop' AND input_hash = 'h' AND state = 'Completed'",
    );
    assert!(lookup.contains("node_runs_memo"), "{lookup}");
    let every_completed =
        plan("SELECT node_id FROM node_runs WHERE action = 'noop' AND state = 'Completed'");
    assert!(
        !every_completed.contains("node_runs_memo"),
        "{every_completed}"
    );
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn concurrent_workers_migrate_one_schema_once() {
    let Some(probe) = fresh_store("concurrent_probe").await else {
        return;
    };
    probe.drop_schema().await.unwrap();
    let schema = unique_schema("concurrent");
    let connects = (0..6).map(|_| {
        let options = with_schema(&schema);
        tokio::spawn(async move { PostgresStore::connect_with(&url(), options).await })
    });
    let mut stores = Vec::new();
    for handle in connects {
        stores.push(handle.await.unwrap().expect("every worker connects"));
    }
    let applied = psql(&schema, "SELECT count(*) FROM dagger_schema_migrations");
    assert_eq!(applied, latest_pg_version().to_string());
    // All of them see one database.
    let run = RunId::from("shared");
    stores[0]
        .create_run(common::conformance::run(
            "shared",
            "wf",
            RunStatus::Running,
            1,
        ))
        .await
        .unwrap();
    assert!(stores[5].get_run(&run).await.unwrap().is_some());
    stores.pop().unwrap().drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(store) = fresh_store("newer").await else {
        return;
    };
    let schema = store.schema().unwrap().to_string();
    psql(
        &schema,
        "INSERT INTO dagger_schema_migrations (version, name) VALUES (999, 'from the future')",
    );
    let err = PostgresStore::connect_with(&url(), with_schema(&schema))
        .await
        .unwrap_err();
    match &err {
        StoreError::NewerSchema {
            location,
            found,
            supported,
        } => {
            assert_eq!((*found, *supported), (999, latest_pg_version()));
            assert!(location.contains(&schema), "{location}");
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn tampered_artifacts_are_reported_not_returned() {
    let Some(store) = fresh_store("tamper").await else {
        return;
    };
    let schema = store.schema().unwrap().to_string();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let id = store.put_artifact(big.clone()).await.unwrap();
    assert_eq!(store.get_artifact(&id).await.unwrap(), big);

    psql(
        &schema,
        &format!("UPDATE artifacts SET data = set_byte(data, 7, 0) WHERE artifact_id = '{id}'"),
    );
    let err = store.get_artifact(&id).await.unwrap_err();
    match &err {
        StoreError::CorruptArtifact {
            id: bad,
            path,
            reason,
        } => {
            assert_eq!(*bad, id.to_string());
            assert!(
                path.contains(&schema) && path.ends_with("(artifacts table)"),
                "{path}"
            );
            assert!(reason.starts_with("content hashes to "), "{reason}");
        }
        other => panic!("expected CorruptArtifact, got {other:?}"),
    }

    psql(
        &schema,
        &format!("UPDATE artifacts SET data = '\\x00' WHERE artifact_id = '{id}'"),
    );
    let err = store.get_artifact(&id).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("1 bytes instead of the 300000 recorded"),
        "{err}"
    );
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_node_run_pointing_at_an_unknown_artifact_names_it() {
    let Some(store) = fresh_store("fk").await else {
        return;
    };
    store
        .create_run(common::conformance::run("r", "wf", RunStatus::Running, 1))
        .await
        .unwrap();
    let missing = ArtifactId::of(b"never stored");
    let record = NodeRunRecord {
        output_artifact_id: Some(missing.clone()),
        ..common::conformance::node("r", "a", "", NodeStatus::Completed)
    };
    let err = store.put_node_run(record).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { entity: "artifact", id } if *id == missing.as_str()),
        "{err:?}"
    );
    assert!(store.node_runs(&RunId::from("r")).await.unwrap().is_empty());
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn dropping_the_schema_requires_one_of_our_own() {
    let Some(probe) = fresh_store("own_probe").await else {
        return;
    };
    probe.drop_schema().await.unwrap();
    // This store migrates the database's default schema (`public`).
    let store = PostgresStore::connect(&url()).await.unwrap();
    let err = store.drop_schema().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("has no schema of its own")),
        "{err:?}"
    );
}

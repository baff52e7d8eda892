//! `ScheduleStore` on every backend: paused overrides, stored schedules,
//! a second add of a name refused, delete removing only stored schedules;
//! on SQLite the state survives reopening the file.

mod common;

use dagger_core::store::{MemoryStore, ScheduleRecord};
use dagger_core::{StoreError, Stores};
use dagger_storage::SqliteStore;
use serde_json::json;
use std::sync::Arc;

async fn schedule_suite(stores: Stores) {
    let s = &stores.schedules;
    assert!(s.list_schedules().await.unwrap().is_empty());
    // A pause of a declared schedule: a row without a definition.
    s.set_schedule_paused("nightly", true, 10).await.unwrap();
    s.set_schedule_paused("nightly", false, 20).await.unwrap();
    // A stored schedule, then paused.
    let spec = json!({"name": "hourly", "cron": "0 * * * *", "inputs": {"n": 3}});
    s.add_schedule("hourly", "wf", spec.clone(), 30)
        .await
        .unwrap();
    s.set_schedule_paused("hourly", true, 40).await.unwrap();
    let err = s
        .add_schedule("hourly", "other", json!({}), 50)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::AlreadyExists {
                entity: "schedule",
                ..
            }
        ),
        "{err}"
    );
    // A pause recorded before the schedule is added is kept.
    s.set_schedule_paused("later", true, 60).await.unwrap();
    let later = json!({"name": "later", "every": "1m"});
    s.add_schedule("later", "wf", later.clone(), 70)
        .await
        .unwrap();
    let want = vec![
        ScheduleRecord {
            name: "hourly".into(),
            workflow: Some("wf".into()),
            spec: Some(spec),
            paused: Some(true),
            updated_at: 40,
        },
        ScheduleRecord {
            name: "later".into(),
            workflow: Some("wf".into()),
            spec: Some(later),
            paused: Some(true),
            updated_at: 70,
        },
        ScheduleRecord {
            name: "nightly".into(),
            workflow: None,
            spec: None,
            paused: Some(false),
            updated_at: 20,
        },
    ];
    assert_eq!(s.list_schedules().await.unwrap(), want);
    // Delete removes stored schedules only.
    assert!(!s.delete_schedule("nightly").await.unwrap());
    assert!(s.delete_schedule("hourly").await.unwrap());
    assert!(!s.delete_schedule("hourly").await.unwrap());
    let names: Vec<String> = s
        .list_schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["later", "nightly"]);
}

#[tokio::test]
async fn memory_schedule_states() {
    schedule_suite(Stores::from(Arc::new(MemoryStore::new()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_schedule_states_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("sched.db").display());
    let store = SqliteStore::open(&location).await.unwrap();
    schedule_suite(store.stores()).await;
    drop(store);
    let store = SqliteStore::open(&location).await.unwrap();
    let rows = store.stores().schedules.list_schedules().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].paused, Some(true));
    store.integrity_check().await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schedule_states() {
    let Some(store) = common::postgres::fresh_store("schedule_states").await else {
        return;
    };
    schedule_suite(Stores::from(store.clone())).await;
    store.drop_schema().await.unwrap();
}

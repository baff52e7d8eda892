//! The Jobs (Task Agent) and Channels (Pub/Sub) pages and API, over the
//! in-memory store's `TaskStore` and `MessageLog`.

mod common;

use common::*;
use dagger_core::store::{
    BreakerRecord, BreakerState, JobRecord, MemoryStore, MessageLog, MessageRecord, TaskRecord,
    TaskStore, TaskType, transact,
};
use dagger_core::{JobId, JobStatus, MessageId, TaskId, TaskStatus};
use dagger_serve::{ServeOptions, Server};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

fn task(job: &str, id: &str, deps: &[&str], status: TaskStatus) -> TaskRecord {
    TaskRecord {
        task_id: TaskId::from(id),
        job_id: JobId::from(job),
        parent_id: None,
        task_type: TaskType::Task,
        agent: "researcher".into(),
        description: format!("do {id}"),
        acceptance_criteria: None,
        input: json!({}),
        output: (status == TaskStatus::Completed).then(|| json!({ "found": id })),
        error: (status == TaskStatus::Failed).then(|| EVIL.to_string()),
        dependencies: deps.iter().map(|d| TaskId::from(*d)).collect(),
        priority: 0,
        seq: 0,
        status,
        attempts: 1,
        failures: 0,
        max_retries: None,
        timeout_ms: None,
        lease_owner: None,
        lease_expires_at: None,
        not_before: None,
        created_at: 1,
        updated_at: 2,
        started_at: None,
        finished_at: None,
        traceparent: None,
    }
}

fn message(payload: Value) -> MessageRecord {
    MessageRecord {
        offset: 0,
        channel: String::new(),
        message_id: MessageId::generate(),
        source: Some("writer".into()),
        payload,
        timestamp: 5,
        correlation_id: None,
        causation_id: None,
        headers: BTreeMap::new(),
        depth: 0,
    }
}

async fn app() -> (axum::Router, tempfile::TempDir) {
    let (dir, stores) = temp_store().await;
    let mem = Arc::new(MemoryStore::new());
    transact(mem.as_ref() as &dyn TaskStore, |tx| {
        for (i, (id, status)) in [
            ("job-a", JobStatus::Running),
            ("job-b", JobStatus::Completed(false)),
        ]
        .into_iter()
        .enumerate()
        {
            tx.put_job(&JobRecord {
                job_id: JobId::from(id),
                status,
                allowed_agents: None,
                config: json!({}),
                started: true,
                reason: None,
                created_at: i as i64,
                updated_at: i as i64,
            })?;
        }
        tx.put_task(&task("job-a", "t1", &[], TaskStatus::Completed))?;
        tx.put_task(&task("job-a", "t2", &["t1"], TaskStatus::InProgress))?;
        tx.put_task(&task("job-a", "t3", &["t1", "t2"], TaskStatus::Failed))?;
        Ok::<_, dagger_core::StoreError>(())
    })
    .unwrap();
    mem.append(
        "news.raw",
        (0..3).map(|i| message(json!({ "n": i }))).collect(),
    )
    .await
    .unwrap();
    mem.commit("news.raw", "summarizer", 2).await.unwrap();
    mem.commit("news.raw", "archiver <i>", 3).await.unwrap();
    mem.commit("other", "elsewhere", 1).await.unwrap();
    mem.append(
        "dead_letter",
        vec![message(json!({
            "reason": "handler_failed", "agent": "summarizer", "error": "timeout <b>x</b>",
            "attempts": 3, "original": { "channel": "news.raw" }
        }))],
    )
    .await
    .unwrap();
    let server = Server::new(
        ServeOptions::new(stores)
            .with_task_store(mem.clone())
            .with_message_log(mem),
    )
    .unwrap();
    (server.router(), dir)
}

#[tokio::test]
async fn jobs_are_listed_and_shown_with_their_task_graph() {
    let (app, _d) = app().await;
    let a = get(&app, "/jobs").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("href=\"/jobs/job-a\"") && a.body.contains("href=\"/jobs/job-b\""));
    assert!(
        a.body.find("job-b").unwrap() < a.body.find("job-a\"").unwrap(),
        "newest first"
    );
    let a = get(&app, "/jobs?status=Failed").await;
    assert!(a.body.contains("/jobs/job-b") && !a.body.contains("/jobs/job-a\""));
    let a = get(&app, "/jobs?status=Nope").await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("unknown job status `Nope`"));

    let a = get(&app, "/jobs/job-a").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("<svg"));
    assert_eq!(a.body.matches("class=\"gnode s-").count(), 3);
    assert!(a.body.contains("class=\"gnode s-InProgress\""));
    assert_eq!(
        a.body.matches("marker-end=\"url(#endarrow)\"").count(),
        3,
        "t1→t2, t1→t3, t2→t3"
    );
    assert!(
        a.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            && !a.body.contains("<script>alert")
    );
    assert!(a.body.contains("{&quot;found&quot;:&quot;t1&quot;}"));
    assert_eq!(get(&app, "/jobs/zzz").await.status, 404);

    let v = get(&app, "/api/jobs").await.json();
    assert_eq!(v["jobs"][0]["job_id"], "job-b");
    assert_eq!(v["jobs"][1]["tasks"], 3);
    let v = get(&app, "/api/jobs/job-a?node_limit=2").await.json();
    assert_eq!(v["task_total"], 3);
    assert_eq!(v["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(v["next_task_offset"], 2);
    let a = get(&app, "/api/jobs/zzz").await;
    assert_eq!(a.json()["error"], "job `zzz` not found");
}

#[tokio::test]
async fn channels_show_counts_messages_and_dead_letter_reasons() {
    let (app, _d) = app().await;
    let a = get(&app, "/channels").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("href=\"/channels/news.raw\""));
    assert!(a.body.contains("dead letters"));
    let a = get(&app, "/channels/news.raw?limit=2").await;
    assert!(a.body.contains("3 message(s)"));
    assert!(
        a.body.find("{&quot;n&quot;:2}").unwrap() < a.body.find("{&quot;n&quot;:1}").unwrap(),
        "newest first"
    );
    assert!(!a.body.contains("{&quot;n&quot;:0}"), "two per page");
    assert!(
        a.body
            .contains("<tr><td class=\"mono\">summarizer</td><td>2</td><td>1</td></tr>"),
        "a subscriber with its committed offset and how far behind it is"
    );
    assert!(a.body.contains("archiver &lt;i&gt;"), "names are escaped");
    assert!(
        !a.body.contains("elsewhere"),
        "only this channel's subscribers"
    );
    assert!(
        a.body
            .contains("href=\"/channels/news.raw?offset=2&amp;limit=2\"")
    );
    let a = get(&app, "/channels/dead_letter").await;
    assert!(
        a.body
            .contains("No subscriber has committed an offset here.")
    );
    assert!(a.body.contains("<td>handler_failed</td>"));
    assert!(a.body.contains("<td>summarizer</td>"));
    assert!(a.body.contains("timeout &lt;b&gt;x&lt;/b&gt;"));
    assert!(a.body.contains("<td class=\"mono\">news.raw</td>"));

    let v = get(&app, "/api/channels").await.json();
    assert_eq!(
        v["channels"],
        json!([{ "name": "dead_letter", "messages": 1 }, { "name": "news.raw", "messages": 3 }])
    );
    let v = get(&app, "/api/channels/news.raw?offset=2&limit=2")
        .await
        .json();
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert_eq!(v["messages"][0]["offset"], 1);
    assert_eq!(v["next_offset"], Value::Null);
    assert_eq!(
        v["subscribers"],
        json!([
            { "name": "archiver <i>", "committed": 3, "behind": 0 },
            { "name": "summarizer", "committed": 2, "behind": 1 },
        ]),
        "the subscribers that committed on this channel, by name"
    );
    let v = get(&app, "/api/channels/dead_letter").await.json();
    assert_eq!(v["messages"][0]["dead_letter"]["reason"], "handler_failed");
    assert_eq!(get(&app, "/api/channels/none").await.status, 404);
}

#[tokio::test]
async fn without_those_stores_the_pages_are_absent() {
    let (_d, stores) = temp_store().await;
    let app = server(&stores, vec![], None).router();
    let a = get(&app, "/runs").await;
    assert!(!a.body.contains("href=\"/jobs\"") && !a.body.contains("href=\"/channels\""));
    let a = get(&app, "/api/jobs").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"], "this server has no task store");
    assert_eq!(get(&app, "/channels").await.status, 404);
}

#[tokio::test]
async fn circuit_breakers_are_shown_on_the_jobs_page_and_api() {
    let (app, _d) = app().await;
    let a = get(&app, "/jobs").await;
    assert!(
        !a.body.contains("Circuit breakers"),
        "none recorded, none shown"
    );

    let (_dir, stores) = temp_store().await;
    let mem = Arc::new(MemoryStore::new());
    transact(mem.as_ref() as &dyn TaskStore, |tx| {
        tx.put_breaker(&BreakerRecord {
            agent: "flaky <x>".into(),
            state: BreakerState::Open,
            consecutive_failures: 3,
            until: Some(1_700_000_000_000),
            last_error: Some("down <b>hard</b>".into()),
            updated_at: 1_699_999_999_000,
        })
    })
    .unwrap();
    let server = Server::new(ServeOptions::new(stores).with_task_store(mem)).unwrap();
    let app = server.router();
    let a = get(&app, "/jobs").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("Circuit breakers"), "{}", a.body);
    assert!(a.body.contains("flaky &lt;x&gt;"));
    assert!(a.body.contains("class=\"badge b-Open\""));
    assert!(a.body.contains("down &lt;b&gt;hard&lt;/b&gt;"));
    let v = get(&app, "/api/jobs").await;
    let v: Value = serde_json::from_str(&v.body).unwrap();
    assert_eq!(v["circuit_breakers"][0]["agent"], "flaky <x>");
    assert_eq!(v["circuit_breakers"][0]["state"], "Open");
    assert_eq!(v["circuit_breakers"][0]["consecutive_failures"], 3);
}

//! One cancellation type for the three paradigms: the same
//! `CancellationToken` stops a DAG Flow run, a Task Agent job and a Pub/Sub
//! executor.

use dagger::prelude::*;
use dagger::task_core::FnAgent;
use std::sync::Arc;
use tokio::sync::Notify;

/// Told once the pub/sub handler and the task agent are running.
static HANDLING: Notify = Notify::const_new();
static WORKING: Notify = Notify::const_new();

#[action(name = "hang")]
async fn hang(ctx: &NodeCtx) -> Result<NodeOutput> {
    ctx.cancel.cancelled().await;
    Err("stopped".into())
}

#[pubsub_agent(name = "stuck", subscribe = "work")]
async fn stuck(_ctx: &PubSubContext, _message: &Message) -> Result<(), String> {
    HANDLING.notify_one();
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::test]
async fn one_token_cancels_a_dag_run_a_task_job_and_a_pubsub_executor() {
    let token = CancellationToken::new();

    // DAG Flow: a run whose only node waits until it is cancelled.
    let registry = ActionRegistry::new();
    dagger::register_all_actions(&registry).unwrap();
    let mut executor = DagExecutor::new(None, registry, Stores::memory())
        .await
        .unwrap();
    executor
        .load_yaml_string("name: w\nnodes:\n  - id: a\n    action: hang\n")
        .unwrap();
    let mut run = Coordinator::default()
        .start(
            &executor,
            RunRequest::new("w")
                .events(true)
                .cancel_token(token.clone()),
        )
        .await
        .unwrap();
    let mut events = run.events().unwrap();
    while let Some(ev) = events.recv().await {
        if matches!(ev, ExecutionEvent::NodeStarted { .. }) {
            break;
        }
    }

    // Task Agent: a job whose only task waits until it is cancelled.
    let agents = TaskAgentRegistry::new();
    agents
        .register_agent(Arc::new(FnAgent::new("wait", |_input, ctx| async move {
            WORKING.notify_one();
            ctx.cancel_token().cancelled().await;
            Err::<TaskOutcome, BoxError>("stopped".into())
        })))
        .unwrap();
    let manager = TaskManager::in_memory(
        std::time::Duration::from_secs(30),
        StallAction::TerminateJob,
        Cache::new(),
        agents,
    );
    let job = manager
        .start_job_with_cancel(
            "job",
            vec![TaskSpec::new("job", "wait", "wait for the token")],
            None,
            None,
            token.clone(),
        )
        .unwrap();
    WORKING.notified().await;

    // Pub/Sub: an executor whose handler never returns.
    let pubsub = Arc::new(PubSubExecutor::new(PubSubConfig::default()).unwrap());
    dagger::register_all_pubsub_agents(&pubsub).unwrap();
    pubsub.publish("work", json!({})).await.unwrap();
    let waiting = {
        let token = token.clone();
        let pubsub = pubsub.clone();
        tokio::spawn(async move { pubsub.run(token).await })
    };
    HANDLING.notified().await;

    token.cancel();
    let report = run.await.unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(job.wait().await, JobStatus::Cancelled);
    assert_eq!(waiting.await.unwrap().unwrap(), RunOutcome::Cancelled);
}

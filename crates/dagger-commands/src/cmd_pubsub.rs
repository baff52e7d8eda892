//! Pub/Sub over NATS JetStream from the command line (feature `nats`):
//! `dagger worker --nats URL` hosts the binary's `#[pubsub_agent]`s, and
//! `dagger publish CHANNEL JSON --nats URL` sends one message to them.

use crate::App;
use crate::error::CliError;
use dagger_nats::{Attachment, NatsBridge, NatsConfig};
use dagger_pubsub::{PubSubAgent, PubSubExecutor};
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where the NATS server and stream are.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct NatsArgs {
    /// NATS server with JetStream, e.g. `nats://127.0.0.1:4222`. With it,
    /// `worker` also hosts this binary's pub/sub agents.
    #[arg(long, env = "DAGGER_NATS", value_name = "URL")]
    pub(crate) nats: Option<String>,
    /// The JetStream stream carrying the channels (created if missing).
    #[arg(
        long,
        env = "DAGGER_NATS_STREAM",
        value_name = "NAME",
        default_value = "dagger"
    )]
    pub(crate) nats_stream: String,
}

impl NatsArgs {
    /// Connects to the server and opens (or creates) the stream.
    async fn connect(&self, url: &str) -> Result<NatsBridge, CliError> {
        NatsBridge::connect(url, NatsConfig::new(self.nats_stream.clone()))
            .await
            .map_err(|e| CliError::Other(format!("NATS at {url}: {e}")))
    }
}

/// The pub/sub agents of `app` that `--agents` selects (all when empty);
/// an unknown name is left for the caller to report.
pub(crate) fn selected_agents(app: &App, names: &[String]) -> Vec<Arc<dyn PubSubAgent>> {
    app.pubsub_agents()
        .iter()
        .filter(|a| names.is_empty() || names.iter().any(|n| n == a.name()))
        .cloned()
        .collect()
}

/// Pub/sub agents running in this process, fed from NATS.
pub(crate) struct HostedAgents {
    executor: Arc<PubSubExecutor>,
    attachment: Attachment,
}

/// Registers `agents` with a new executor whose channels matching
/// `channels` travel over NATS, and starts it: each agent gets a durable
/// consumer per subscription, shared with its replicas in other workers.
pub(crate) async fn host(
    nats: &NatsArgs,
    url: &str,
    agents: Vec<Arc<dyn PubSubAgent>>,
    channels: &[String],
) -> Result<HostedAgents, CliError> {
    let executor = Arc::new(
        PubSubExecutor::builder()
            .build()
            .map_err(|e| CliError::Other(e.to_string()))?,
    );
    for agent in agents {
        let name = agent.name().to_string();
        executor
            .register_agent(agent)
            .map_err(|e| CliError::Other(format!("pub/sub agent `{name}`: {e}")))?;
    }
    let bridge = nats.connect(url).await?;
    let patterns: Vec<&str> = channels.iter().map(String::as_str).collect();
    let attachment = bridge
        .attach(&executor, &patterns)
        .await
        .map_err(|e| CliError::Other(format!("NATS stream `{}`: {e}", nats.nats_stream)))?;
    Ok(HostedAgents {
        executor,
        attachment,
    })
}

impl HostedAgents {
    /// Serves until `stop`, then stops taking messages from NATS and lets
    /// the agents finish what they hold (unacknowledged messages are
    /// redelivered to a replica).
    pub(crate) async fn serve(self, stop: CancellationToken) -> Result<(), CliError> {
        // `run` returns when the executor is idle; the agents keep being fed
        // from NATS until `stop`.
        self.executor
            .run(stop.clone())
            .await
            .map_err(|e| CliError::Other(e.to_string()))?;
        stop.cancelled().await;
        self.attachment.stop().await;
        self.executor
            .shutdown()
            .await
            .map_err(|e| CliError::Other(e.to_string()))?;
        Ok(())
    }
}

/// Arguments of `dagger publish`.
#[derive(clap::Args, Debug)]
pub(crate) struct PublishArgs {
    /// The channel, e.g. `orders.created`.
    channel: String,
    /// The payload: JSON (taken as a string when it is not valid JSON).
    payload: String,
    #[command(flatten)]
    nats: NatsArgs,
}

/// Publishes one message over NATS and prints its id.
pub(crate) async fn publish(args: PublishArgs) -> Result<ExitCode, CliError> {
    let Some(url) = args.nats.nats.clone() else {
        return Err(CliError::Usage(
            "publish needs a NATS server: --nats nats://host:4222 (or $DAGGER_NATS)".into(),
        ));
    };
    let payload =
        serde_json::from_str(&args.payload).unwrap_or(Value::String(args.payload.clone()));
    let hosted = host(
        &args.nats,
        &url,
        Vec::new(),
        std::slice::from_ref(&args.channel),
    )
    .await?;
    let sent = hosted
        .executor
        .publish(&args.channel, payload)
        .await
        .map_err(|e| CliError::Other(format!("publish to `{}`: {e}", args.channel)))?;
    hosted.attachment.stop().await;
    outln!("{sent}");
    Ok(ExitCode::SUCCESS)
}

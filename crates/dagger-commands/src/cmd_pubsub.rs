//! Pub/Sub over NATS JetStream from the command line (feature `nats`):
//! `dagger worker --nats URL` hosts the binary's `#[pubsub_agent]`s, and
//! `dagger publish CHANNEL JSON --nats URL` sends one message to them.
//! Without the feature, `worker` sees the same [`WorkerPubSubArgs`] (with
//! no options) and an [`HostedAgents`] that cannot exist, so it needs no
//! `cfg` of its own.

use crate::App;
use crate::error::CliError;
#[cfg(feature = "nats")]
use dagger_nats::{Attachment, NatsBridge, NatsConfig};
#[cfg(feature = "nats")]
use dagger_pubsub::{PubSubAgent, PubSubExecutor};
#[cfg(feature = "nats")]
use serde_json::Value;
#[cfg(feature = "nats")]
use std::process::ExitCode;
#[cfg(feature = "nats")]
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The pub/sub options of `dagger worker`: `--nats`, `--nats-stream` and
/// `--channels` with the `nats` feature, none without.
#[derive(clap::Args, Debug)]
pub(crate) struct WorkerPubSubArgs {
    #[cfg(feature = "nats")]
    #[command(flatten)]
    nats: NatsArgs,
    /// With --nats: the channel patterns carried over NATS (comma-separated;
    /// `*` one segment, `>` the rest).
    #[cfg(feature = "nats")]
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "PATTERNS",
        default_value = ">"
    )]
    channels: Vec<String>,
}

impl WorkerPubSubArgs {
    /// With `--nats`, hosts the pub/sub agents of `app` that `--agents`
    /// (`names`) selects; `None` without `--nats` (always, without the
    /// feature).
    #[cfg(feature = "nats")]
    pub(crate) async fn host(
        &self,
        app: &App,
        names: &[String],
    ) -> Result<Option<HostedAgents>, CliError> {
        let Some(url) = &self.nats.nats else {
            return Ok(None);
        };
        let agents = selected_agents(app, names);
        if agents.is_empty() {
            return Err(CliError::Usage(format!(
                "--nats: this binary has no pub/sub agent{} to host (`actions` lists them)",
                if names.is_empty() {
                    ""
                } else {
                    " among --agents"
                }
            )));
        }
        let hosted = host(&self.nats, url, agents, &self.channels).await?;
        errln!(
            "hosting pub/sub agents {} on {url} (stream `{}`, channels {})",
            hosted.names.join(", "),
            self.nats.nats_stream,
            self.channels.join(",")
        );
        Ok(Some(hosted))
    }

    /// Without the `nats` feature no pub/sub agent is hosted.
    #[cfg(not(feature = "nats"))]
    #[allow(clippy::unused_async)] // the same signature as with the feature
    pub(crate) async fn host(
        &self,
        _app: &App,
        _names: &[String],
    ) -> Result<Option<HostedAgents>, CliError> {
        Ok(None)
    }
}

/// Where the NATS server and stream are.
#[cfg(feature = "nats")]
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

#[cfg(feature = "nats")]
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
#[cfg(feature = "nats")]
fn selected_agents(app: &App, names: &[String]) -> Vec<Arc<dyn PubSubAgent>> {
    app.pubsub_agents()
        .iter()
        .filter(|a| names.is_empty() || names.iter().any(|n| n == a.name()))
        .cloned()
        .collect()
}

/// Pub/sub agents running in this process, fed from NATS.
#[cfg(feature = "nats")]
pub(crate) struct HostedAgents {
    executor: Arc<PubSubExecutor>,
    attachment: Attachment,
    /// The hosted agents' names.
    names: Vec<String>,
}

/// Without the `nats` feature no agent is hosted: this stand-in has no
/// value, so code holding an `Option<HostedAgents>` only ever sees `None`.
#[cfg(not(feature = "nats"))]
pub(crate) enum HostedAgents {}

/// Registers `agents` with a new executor whose channels matching
/// `channels` travel over NATS, and starts it: each agent gets a durable
/// consumer per subscription, shared with its replicas in other workers.
#[cfg(feature = "nats")]
async fn host(
    nats: &NatsArgs,
    url: &str,
    agents: Vec<Arc<dyn PubSubAgent>>,
    channels: &[String],
) -> Result<HostedAgents, CliError> {
    let names = agents.iter().map(|a| a.name().to_string()).collect();
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
        names,
    })
}

#[cfg(feature = "nats")]
impl HostedAgents {
    /// The hosted agents' names.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

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

#[cfg(not(feature = "nats"))]
impl HostedAgents {
    /// No agents, no names (never called: there is no value).
    pub(crate) fn names(&self) -> &[String] {
        match *self {}
    }

    /// Nothing to serve (never called: there is no value).
    #[allow(clippy::unused_async)] // the same signature as with the feature
    pub(crate) async fn serve(self, _stop: CancellationToken) -> Result<(), CliError> {
        match self {}
    }
}

/// Arguments of `dagger publish`.
#[cfg(feature = "nats")]
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
#[cfg(feature = "nats")]
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

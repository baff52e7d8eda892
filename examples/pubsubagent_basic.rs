//! A news pipeline of five Pub/Sub agents, written with `#[pubsub_agent]`,
//! with schema validation and a dead-letter channel:
//!
//! ```text
//! news.request -> supervisor -> news.fetch -> fetcher -> news.raw.<source>
//!   -> processor -> news.processed -> report_generator -> news.report -> collector
//!                                                       dead_letter -> collector
//! ```
//!
//! The fetcher is a deterministic stand-in for real news sources (no network),
//! so the output is the same on every run. One request is malformed (it fails
//! the supervisor's input schema) and one source returns an article without a
//! title (it fails the fetcher's output schema): both end on the dead-letter
//! channel with the instance path and keyword of the violation.
//!
//! Run with `cargo run -p dagger-examples --example pubsubagent_basic`.

use dagger::prelude::*;
use dagger::pubsub::{DEAD_LETTER_CHANNEL, PublishOptions};
use serde_json::{Value, json};

/// Splits a request into one fetch command per source.
#[pubsub_agent(
    name = "supervisor",
    description = "plans the fetches of a request",
    subscribe = "news.request",
    publish = "news.fetch",
    input_schema = r#"{"type": "object", "required": ["topic", "max_articles"], "properties": {
        "topic": {"type": "string", "minLength": 1},
        "max_articles": {"type": "integer", "minimum": 1, "maximum": 5}}}"#
)]
async fn supervisor(ctx: &PubSubContext, m: &Message) -> Result<(), PubSubError> {
    for source in ["alpha-wire", "beta-times", "broken-feed"] {
        let command = json!({"topic": m.payload["topic"], "source": source,
                             "max_articles": m.payload["max_articles"]});
        ctx.publish("news.fetch", command).await?;
    }
    Ok(())
}

/// Fetches articles: a deterministic stand-in that makes them up.
#[pubsub_agent(
    name = "fetcher",
    description = "fetches articles (deterministic stand-in)",
    subscribe = "news.fetch",
    publish = "news.raw.*",
    output_schema = r#"{"type": "object", "required": ["title", "body", "source"]}"#
)]
async fn fetcher(ctx: &PubSubContext, m: &Message) -> Result<(), PubSubError> {
    let topic = m.payload["topic"].as_str().unwrap_or_default();
    let source = m.payload["source"].as_str().unwrap_or_default();
    let count = m.payload["max_articles"].as_u64().unwrap_or(1);
    for i in 1..=count {
        let article = if source == "broken-feed" && i == 1 {
            // A malformed article: no title.
            json!({"body": "lorem ipsum", "source": source})
        } else {
            json!({
                "title": format!("{topic} news #{i} from {source}"),
                "body": format!("The {topic} community shipped release {i} today; reviewers at {source} call it a solid step forward."),
                "source": source,
            })
        };
        match ctx.publish(&format!("news.raw.{source}"), article).await {
            // A violation is already on the dead-letter channel; keep fetching the rest.
            Ok(_) | Err(PubSubError::OutputSchemaViolation { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Turns a raw article into a processed one: word count and a short summary.
#[pubsub_agent(
    name = "processor",
    description = "counts words and summarizes",
    subscribe = "news.raw.*",
    publish = "news.processed",
    input_schema = r#"{"type": "object", "required": ["title", "body"], "properties": {
        "title": {"type": "string"}, "body": {"type": "string"}}}"#
)]
async fn processor(ctx: &PubSubContext, m: &Message) -> Result<(), PubSubError> {
    let body = m.payload["body"].as_str().unwrap_or_default();
    let words: Vec<&str> = body.split_whitespace().collect();
    let summary = words.iter().take(6).copied().collect::<Vec<_>>().join(" ");
    let processed = json!({"title": m.payload["title"], "source": m.payload["source"],
                           "words": words.len(), "summary": format!("{summary}...")});
    ctx.publish("news.processed", processed).await?;
    Ok(())
}

/// Formats each processed article as a report line.
#[pubsub_agent(
    name = "report_generator",
    description = "writes report lines",
    subscribe = "news.processed",
    publish = "news.report"
)]
async fn report_generator(ctx: &PubSubContext, m: &Message) -> Result<(), PubSubError> {
    let p = &m.payload;
    let line = format!(
        "[{}] {} ({} words): {}",
        p["source"].as_str().unwrap_or_default(),
        p["title"].as_str().unwrap_or_default(),
        p["words"],
        p["summary"].as_str().unwrap_or_default()
    );
    ctx.publish("news.report", json!({ "line": line })).await?;
    Ok(())
}

/// Collects report lines and dead letters into the cache, per correlation id.
#[pubsub_agent(
    name = "collector",
    description = "collects the report and the dead letters",
    subscribe = "news.report, dead_letter"
)]
async fn collector(ctx: &PubSubContext, m: &Message) -> Result<(), PubSubError> {
    let scope = ctx.correlation_id().unwrap_or("uncorrelated").to_string();
    let (namespace, entry) = if m.channel == DEAD_LETTER_CHANNEL {
        (
            format!("dead_letters:{scope}"),
            describe_dead_letter(&m.payload),
        )
    } else {
        let line = m.payload["line"].as_str().unwrap_or_default().to_string();
        (format!("report:{scope}"), line)
    };
    // Keyed by the entry itself, so sorting the keys sorts the entries.
    ctx.cache().insert(&namespace, &entry, Value::Bool(true));
    Ok(())
}

/// One line for a dead letter: why, by whom, on which channel, and the detail.
fn describe_dead_letter(p: &Value) -> String {
    let detail = match p["reason"].as_str() {
        Some("input_schema" | "output_schema") => format!(
            "path `{}`, keyword `{}`",
            p["violation"]["instance_path"].as_str().unwrap_or_default(),
            p["violation"]["keyword"].as_str().unwrap_or_default()
        ),
        _ => p["error"].as_str().unwrap_or_default().to_string(),
    };
    format!(
        "{} by {} on `{}`: {detail}",
        p["reason"].as_str().unwrap_or_default(),
        p["agent"].as_str().unwrap_or_default(),
        p["original"]["channel"].as_str().unwrap_or_default(),
    )
}

fn sorted_keys(bus: &PubSubExecutor, namespace: &str) -> Vec<String> {
    let mut keys: Vec<String> = bus
        .cache()
        .namespace(namespace)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let bus = PubSubExecutor::new(PubSubConfig::default())?;
    dagger::register_all_pubsub_agents(&bus)?;

    let correlated = || PublishOptions {
        correlation_id: Some("rust-daily".into()),
        ..PublishOptions::default()
    };
    let good = json!({"topic": "rust", "max_articles": 2});
    bus.publish_with("news.request", good, correlated()).await?;
    // Malformed: the topic is a number. It never reaches the supervisor.
    let bad = json!({"topic": 42, "max_articles": 2});
    bus.publish_with("news.request", bad, correlated()).await?;
    bus.run(CancellationToken::new()).await?;

    println!("== Dagger Pub/Sub: news pipeline ==");
    println!("(the fetcher is a deterministic stand-in for real news sources)\n");
    let report = sorted_keys(&bus, "report:rust-daily");
    println!("Report `rust-daily` ({} articles):", report.len());
    for line in &report {
        println!("  - {line}");
    }
    let dead = sorted_keys(&bus, "dead_letters:rust-daily");
    println!(
        "\nDead letters on `{DEAD_LETTER_CHANNEL}` ({}):",
        dead.len()
    );
    for line in &dead {
        println!("  - {line}");
    }
    // The example doubles as a check: CI runs it.
    if report.len() != 5 || dead.len() != 2 {
        return Err(format!(
            "expected 5 report lines and 2 dead letters, got {} and {}",
            report.len(),
            dead.len()
        )
        .into());
    }

    let metrics = bus.shutdown().await?;
    println!("\nChannels:");
    for (name, m) in &metrics.channels {
        println!(
            "  {name:<22} published {:>2}  delivered {:>2}  dead-lettered {}",
            m.published, m.delivered, m.dead_lettered
        );
    }
    println!("\nDOT:\n{}", bus.to_dot());
    Ok(())
}

//! A news pipeline of five Pub/Sub agents with schema validation and a
//! dead-letter channel:
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
//! Run with `cargo run -p dagger-pubsub --example pubsub_basic`.

use dagger_core::{BoxError, JsonSchema};
use dagger_pubsub::{
    CancellationToken, DEAD_LETTER_CHANNEL, Message, PubSubAgent, PubSubConfig, PubSubContext,
    PubSubError, PubSubExecutor, PublishOptions,
};
use serde_json::{Value, json};
use std::sync::Arc;

fn schema(owner: &str, value: Value) -> Result<JsonSchema, BoxError> {
    Ok(JsonSchema::compile(&value, Some(owner))?)
}

/// Splits a request into one fetch command per source.
struct Supervisor {
    input: JsonSchema,
}

#[async_trait::async_trait]
impl PubSubAgent for Supervisor {
    fn name(&self) -> &str {
        "supervisor"
    }
    fn description(&self) -> &str {
        "plans the fetches of a request"
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["news.request".into()]
    }
    fn publications(&self) -> Vec<String> {
        vec!["news.fetch".into()]
    }
    fn input_schema(&self) -> Option<&JsonSchema> {
        Some(&self.input)
    }
    async fn handle_message(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        for source in ["alpha-wire", "beta-times", "broken-feed"] {
            ctx.publish(
                "news.fetch",
                json!({"topic": m.payload["topic"], "source": source,
                       "max_articles": m.payload["max_articles"]}),
            )
            .await?;
        }
        Ok(())
    }
}

/// Fetches articles: a deterministic stand-in that makes them up.
struct Fetcher {
    output: JsonSchema,
}

#[async_trait::async_trait]
impl PubSubAgent for Fetcher {
    fn name(&self) -> &str {
        "fetcher"
    }
    fn description(&self) -> &str {
        "fetches articles (deterministic stand-in)"
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["news.fetch".into()]
    }
    fn publications(&self) -> Vec<String> {
        vec!["news.raw.*".into()]
    }
    fn output_schema(&self) -> Option<&JsonSchema> {
        Some(&self.output)
    }
    async fn handle_message(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
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
                Ok(_) => {}
                // Already on the dead-letter channel; keep fetching the rest.
                Err(PubSubError::OutputSchemaViolation { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Turns a raw article into a processed one: word count and a short summary.
struct Processor {
    input: JsonSchema,
}

#[async_trait::async_trait]
impl PubSubAgent for Processor {
    fn name(&self) -> &str {
        "processor"
    }
    fn description(&self) -> &str {
        "counts words and summarizes"
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["news.raw.*".into()]
    }
    fn publications(&self) -> Vec<String> {
        vec!["news.processed".into()]
    }
    fn input_schema(&self) -> Option<&JsonSchema> {
        Some(&self.input)
    }
    async fn handle_message(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        let body = m.payload["body"].as_str().unwrap_or_default();
        let words: Vec<&str> = body.split_whitespace().collect();
        let summary = words.iter().take(6).copied().collect::<Vec<_>>().join(" ");
        ctx.publish(
            "news.processed",
            json!({"title": m.payload["title"], "source": m.payload["source"],
                   "words": words.len(), "summary": format!("{summary}...")}),
        )
        .await?;
        Ok(())
    }
}

/// Formats each processed article as a report line.
struct ReportGenerator;

#[async_trait::async_trait]
impl PubSubAgent for ReportGenerator {
    fn name(&self) -> &str {
        "report_generator"
    }
    fn description(&self) -> &str {
        "writes report lines"
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["news.processed".into()]
    }
    fn publications(&self) -> Vec<String> {
        vec!["news.report".into()]
    }
    async fn handle_message(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        let p = &m.payload;
        let line = format!(
            "[{}] {} ({} words): {}",
            p["source"].as_str().unwrap_or_default(),
            p["title"].as_str().unwrap_or_default(),
            p["words"],
            p["summary"].as_str().unwrap_or_default()
        );
        ctx.publish("news.report", json!({"line": line})).await?;
        Ok(())
    }
}

/// Collects report lines and dead letters into the cache, per correlation id.
struct Collector;

#[async_trait::async_trait]
impl PubSubAgent for Collector {
    fn name(&self) -> &str {
        "collector"
    }
    fn description(&self) -> &str {
        "collects the report and the dead letters"
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["news.report".into(), DEAD_LETTER_CHANNEL.into()]
    }
    fn publications(&self) -> Vec<String> {
        Vec::new()
    }
    async fn handle_message(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        let scope = ctx.correlation_id().unwrap_or("uncorrelated").to_string();
        let (namespace, entry) = if m.channel == DEAD_LETTER_CHANNEL {
            let p = &m.payload;
            let detail = match p["reason"].as_str() {
                Some("input_schema" | "output_schema") => format!(
                    "path `{}`, keyword `{}`",
                    p["violation"]["instance_path"].as_str().unwrap_or_default(),
                    p["violation"]["keyword"].as_str().unwrap_or_default()
                ),
                _ => p["error"].as_str().unwrap_or_default().to_string(),
            };
            let entry = format!(
                "{} by {} on `{}`: {detail}",
                p["reason"].as_str().unwrap_or_default(),
                p["agent"].as_str().unwrap_or_default(),
                p["original"]["channel"].as_str().unwrap_or_default(),
            );
            (format!("dead_letters:{scope}"), entry)
        } else {
            let line = m.payload["line"].as_str().unwrap_or_default().to_string();
            (format!("report:{scope}"), line)
        };
        // Keyed by the entry itself, so the cache's key order sorts them.
        ctx.cache().insert(&namespace, &entry, Value::Bool(true));
        Ok(())
    }
}

fn keys(ex: &PubSubExecutor, namespace: &str) -> Vec<String> {
    let mut keys: Vec<String> = ex
        .cache()
        .namespace(namespace)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let ex = PubSubExecutor::new(PubSubConfig::default())?;
    ex.register_agent(Arc::new(Supervisor {
        input: schema(
            "supervisor",
            json!({"type": "object", "required": ["topic", "max_articles"], "properties": {
                "topic": {"type": "string", "minLength": 1},
                "max_articles": {"type": "integer", "minimum": 1, "maximum": 5}}}),
        )?,
    }))?;
    ex.register_agent(Arc::new(Fetcher {
        output: schema(
            "fetcher",
            json!({"type": "object", "required": ["title", "body", "source"]}),
        )?,
    }))?;
    ex.register_agent(Arc::new(Processor {
        input: schema(
            "processor",
            json!({"type": "object", "required": ["title", "body"], "properties": {
                "title": {"type": "string"}, "body": {"type": "string"}}}),
        )?,
    }))?;
    ex.register_agent(Arc::new(ReportGenerator))?;
    ex.register_agent(Arc::new(Collector))?;

    let request = |topic: Value| {
        (
            json!({"topic": topic, "max_articles": 2}),
            PublishOptions {
                correlation_id: Some("rust-daily".into()),
                ..PublishOptions::default()
            },
        )
    };
    let (good, opts) = request(json!("rust"));
    ex.publish_with("news.request", good, opts).await?;
    // Malformed: the topic is a number. It never reaches the supervisor.
    let (bad, opts) = request(json!(42));
    ex.publish_with("news.request", bad, opts).await?;
    ex.run(CancellationToken::new()).await?;

    println!("== Dagger Pub/Sub: news pipeline ==");
    println!("(the fetcher is a deterministic stand-in for real news sources)\n");
    let report = keys(&ex, "report:rust-daily");
    println!("Report `rust-daily` ({} articles):", report.len());
    for line in &report {
        println!("  - {line}");
    }
    let dead = keys(&ex, "dead_letters:rust-daily");
    println!(
        "\nDead letters on `{DEAD_LETTER_CHANNEL}` ({}):",
        dead.len()
    );
    for line in &dead {
        println!("  - {line}");
    }
    let metrics = ex.shutdown().await?;
    println!("\nChannels:");
    for (name, m) in &metrics.channels {
        println!(
            "  {name:<22} published {:>2}  delivered {:>2}  dead-lettered {}",
            m.published, m.delivered, m.dead_lettered
        );
    }
    println!("\nDOT:\n{}", ex.to_dot());
    Ok(())
}

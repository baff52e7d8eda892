//! DAG Flow basics: a YAML pipeline of `#[action]` functions, run in parallel
//! and then sequentially, to show what parallel execution buys.
//!
//! Run: `cargo run -p dagger-examples --example dag_flow`

use dagger::prelude::*;
use serde_json::json;
use std::time::Instant;

const PIPELINE: &str = r#"
name: enrich_orders
description: Three slow lookups that do not depend on each other, then a merge.
nodes:
  - id: prices
    action: lookup
    inputs:
      - { name: table, value: prices }
      - { name: delay_ms, value: 100 }
  - id: stock
    action: lookup
    inputs:
      - { name: table, value: stock }
      - { name: delay_ms, value: 100 }
  - id: shipping
    action: lookup
    inputs:
      - { name: table, value: shipping }
      - { name: delay_ms, value: 100 }
  - id: merge
    action: merge
    dependencies: [prices, stock, shipping]
    inputs:
      - { name: prices, reference: prices.rows }
      - { name: stock, reference: stock.rows }
      - { name: shipping, reference: shipping.rows }
      - { name: order, reference: inputs.order }
"#;

/// A stand-in for a slow database or API call.
#[action(name = "lookup", description = "Reads a table after a delay")]
async fn lookup(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let table: String = ctx.input_as("table")?;
    let delay: u64 = ctx.input_as("delay_ms")?;
    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    Ok(NodeOutput::success(
        json!({ "rows": format!("{table} for the order") }),
    ))
}

/// Joins the lookups.
#[action(name = "merge")]
async fn merge(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let summary = format!(
        "order {}: {}, {}, {}",
        ctx.inputs["order"], ctx.inputs["prices"], ctx.inputs["stock"], ctx.inputs["shipping"]
    );
    Ok(NodeOutput::success(json!({ "summary": summary })))
}

async fn run_once(parallel: bool) -> Result<(u128, String), Box<dyn std::error::Error>> {
    let registry = ActionRegistry::new();
    dagger::register_all_actions(&registry)?;
    let config = DagConfig {
        enable_parallel_execution: parallel,
        ..DagConfig::default()
    };
    let mut executor = DagExecutor::new(Some(config), registry, Stores::memory()).await?;
    executor.load_yaml_string(PIPELINE)?;
    let cache = Cache::new();
    insert_value(&cache, "inputs", "order", 4711)?;
    let started = Instant::now();
    let report = execute_dag(&mut executor, &cache, "enrich_orders").await?;
    assert!(report.succeeded(), "{report:?}");
    let summary = cache
        .get("merge", "summary")
        .map(|v| v.to_string())
        .unwrap_or_default();
    Ok((started.elapsed().as_millis(), summary))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (parallel_ms, summary) = run_once(true).await?;
    let (sequential_ms, _) = run_once(false).await?;
    println!("result: {summary}");
    println!("parallel:   {parallel_ms} ms (the three 100 ms lookups overlap)");
    println!("sequential: {sequential_ms} ms (one node at a time)");
    Ok(())
}

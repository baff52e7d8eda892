//! DOT of definitions and runs: golden files (insta), hostile ids, and
//! Graphviz's own parser when it is installed.

use dagger_core::NodeStatus;
use dagger_dag_flow::{
    NodeDef, NodeRunView, WorkflowDef, load_yaml_path, serialize_run_to_dot, serialize_tree_to_dot,
};
use std::io::Write;
use std::process::{Command, Stdio};

fn pipeline() -> WorkflowDef {
    load_yaml_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/valid/pipeline.yaml"
    ))
    .expect("fixture loads")
}

fn run_views() -> Vec<NodeRunView> {
    vec![
        NodeRunView {
            attempts: 1,
            duration_ms: Some(120),
            ..NodeRunView::new("validate_input", NodeStatus::Completed)
        },
        NodeRunView {
            attempts: 3,
            duration_ms: Some(2_400),
            error: Some("exit code 2: \"bad row\" at {line 7}".into()),
            ..NodeRunView::new("transform_data", NodeStatus::Failed)
        },
        NodeRunView {
            reason: Some("dependency `transform_data` failed".into()),
            ..NodeRunView::new("report", NodeStatus::Skipped)
        },
        NodeRunView {
            attempts: 1,
            added_at_runtime: true,
            ..NodeRunView::new("recover", NodeStatus::Running)
        },
    ]
}

#[test]
fn definition_golden() {
    insta::assert_snapshot!("pipeline_definition", serialize_tree_to_dot(&pipeline()));
}

#[test]
fn run_golden() {
    insta::assert_snapshot!(
        "pipeline_run",
        serialize_run_to_dot(&pipeline(), &run_views())
    );
}

#[test]
fn run_shows_status_colour_attempts_duration_error_and_runtime_nodes() {
    let dot = serialize_run_to_dot(&pipeline(), &run_views());
    assert!(dot.contains(r#""transform_data" ["label"="transform_data\naction: transform_customer_data\nFailed · attempts 3 · 2400 ms\nerror: exit code 2: \"bad row\" at {line 7}", "fillcolor"="salmon", "style"="rounded,filled"];"#), "{dot}");
    assert!(dot.contains(r#""recover" ["label"="recover\nRunning · attempts 1", "fillcolor"="lightblue", "style"="rounded,filled,dashed"];"#), "{dot}");
    assert!(dot.contains(r#"reason: dependency `transform_data` failed"#));
}

fn hostile_def() -> WorkflowDef {
    let ids = [
        "quote\"d",
        "new\nline",
        "br{ace}s",
        "ünï©ødé ✓",
        "<script>alert(1)</script>",
        "back\\slash",
        "semi;colon -> edge",
    ];
    let mut nodes: Vec<NodeDef> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        nodes.push(NodeDef {
            id: (*id).to_string(),
            action: format!("act\"{i}\n}}"),
            dependencies: if i == 0 {
                vec![]
            } else {
                vec![ids[i - 1].to_string()]
            },
            ..NodeDef::default()
        });
    }
    WorkflowDef {
        name: "evil\" { graph".into(),
        description: None,
        author: None,
        version: None,
        signature: None,
        tags: vec![],
        config: None,
        inputs: None,
        schedules: Vec::new(),
        nodes,
    }
}

#[test]
fn hostile_ids_are_escaped() {
    let def = hostile_def();
    let views: Vec<NodeRunView> = def
        .nodes
        .iter()
        .map(|n| NodeRunView {
            error: Some(format!("{}\"}}\n<b>", n.id)),
            ..NodeRunView::new(n.id.clone(), NodeStatus::Failed)
        })
        .collect();
    for dot in [
        serialize_tree_to_dot(&def),
        serialize_run_to_dot(&def, &views),
    ] {
        assert!(dot.starts_with("digraph \"evil\\\" { graph\" {\n"), "{dot}");
        assert!(dot.contains(r#""quote\"d""#));
        assert!(dot.contains(r#""new\nline""#));
        assert!(dot.contains(r#""back\\slash" -> "semi;colon -> edge";"#));
        // Every statement is on its own line: raw newlines never leak into ids.
        let statements = dot.lines().count();
        assert_eq!(statements, dot.matches(";\n").count() + 2, "{dot}");
        graphviz_accepts(&dot);
    }
}

#[test]
fn graphviz_accepts_the_goldens() {
    graphviz_accepts(&serialize_tree_to_dot(&pipeline()));
    graphviz_accepts(&serialize_run_to_dot(&pipeline(), &run_views()));
}

/// Feeds `dot` to Graphviz when it is installed; says so and returns when not.
fn graphviz_accepts(dot: &str) {
    let child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            println!("skipping the Graphviz check: cannot run `dot` ({e})");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(dot.as_bytes())
        .expect("write to dot");
    let out = child.wait_with_output().expect("dot finishes");
    assert!(
        out.status.success(),
        "dot rejected:\n{dot}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
}

#[tokio::test]
async fn the_executor_renders_loaded_workflows_by_name() {
    let mut ex = dagger_dag_flow::DagExecutor::new(
        None,
        dagger_dag_flow::ActionRegistry::new(),
        dagger_core::Stores::memory(),
    )
    .await
    .expect("executor");
    ex.load_yaml_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/valid/pipeline.yaml"
    ))
    .expect("loads");
    assert_eq!(
        ex.serialize_tree_to_dot("data_processing_pipeline")
            .await
            .expect("loaded"),
        serialize_tree_to_dot(&pipeline())
    );
    assert_eq!(
        ex.serialize_tree_to_dot("nope")
            .await
            .expect_err("unknown")
            .to_string(),
        "no workflow named `nope` is loaded"
    );
}

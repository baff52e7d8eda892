//! Waiting nodes in YAML: `sleep`, `wait_until` and `wait_for` load without
//! an action, and their mistakes are load errors at their field.

use dagger_dag_flow::{OnTimeout, load_yaml_str};

fn problems(yaml: &str) -> Vec<String> {
    match load_yaml_str(yaml, "w.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e.issues().iter().map(|i| i.to_string()).collect(),
    }
}

#[test]
fn waiting_nodes_load_without_an_action() {
    let wf = load_yaml_str(
        "name: w\nnodes:\n  - id: nap\n    sleep: 10m\n  - id: at\n    wait_until: \"2026-12-08T09:00:00Z\"\n  - id: pay\n    wait_for: { signal: paid, match: \"/id == {{ inputs.id }}\", timeout: 1h, on_timeout: continue, schema: { type: object } }\n",
        "w.yaml",
    )
    .expect("loads");
    assert_eq!(wf.nodes[0].sleep.as_deref(), Some("10m"));
    assert!(wf.nodes.iter().all(|n| n.action.is_empty() && n.is_wait()));
    let w = wf.nodes[2].wait_for.as_ref().unwrap();
    assert_eq!(
        (w.signal.as_str(), w.on_timeout),
        ("paid", OnTimeout::Continue)
    );
}

#[test]
fn mistakes_in_waiting_nodes_are_reported_at_their_field() {
    let found = problems(
        "name: w\nnodes:\n  - id: a\n    sleep: soon\n  - id: b\n    action: echo\n    sleep: 1s\n  - id: c\n    sleep: 1s\n    wait_until: \"2026-12-08T09:00:00Z\"\n  - id: d\n    wait_until: tomorrow\n  - id: e\n    wait_for: { signal: paid, match: \"id == 1\", timeout: forever }\n",
    );
    let expect = [
        "w.yaml:4:12: node `a`: field `sleep`: `soon` is not a duration",
        "w.yaml:6:13: node `b`: field `action`: a waiting node",
        "w.yaml:10:17: node `c`: field `sleep`: give one of `sleep`, `wait_until` and `wait_for`",
        "w.yaml:12:17: node `d`: field `wait_until`: `tomorrow` is not an RFC 3339 time",
        "node `e`: field `wait_for`: `match`: `id` is not a JSON pointer",
        "node `e`: field `wait_for`: `timeout`: `forever` is not a duration",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.contains(e)),
            "`{e}` not in {found:#?}"
        );
    }
    assert!(
        !found
            .iter()
            .any(|f| f.contains("missing required field `action`")),
        "{found:#?}"
    );
}

//! A definition with every field set survives serialization to JSON (which is
//! YAML) and loading back: the loader knows every field of the model. The
//! struct literals below name every field, so adding one to the model breaks
//! this test until the loader reads it.

use dagger_dag_flow::{
    DagConfigOverride, InputSpec, JsonType, NodeDef, OnFailure, OnTimeout, OutputSpec,
    RetryStrategy, RunInputDef, WaitFor, WorkflowDef, load_yaml_str,
};
use serde_json::json;

#[test]
fn every_field_round_trips() {
    let def = WorkflowDef {
        name: "full".into(),
        description: Some("all fields".into()),
        author: Some("someone".into()),
        version: Some("3.1".into()),
        signature: Some("sig".into()),
        tags: vec!["a".into(), "b".into()],
        config: Some(DagConfigOverride {
            max_parallel_nodes: Some(2),
            on_failure: Some(OnFailure::Pause),
            retry_strategy: Some(RetryStrategy::Exponential {
                initial_delay_secs: 1,
                max_delay_secs: 10,
                multiplier: 1.5,
            }),
            human_wait_minutes: Some(Some(2)),
            ..DagConfigOverride::default()
        }),
        inputs: Some(vec![
            RunInputDef {
                name: "go".into(),
                kind: Some(JsonType::Boolean),
                schema: None,
                default: Some(json!(true)),
                description: Some("whether to go".into()),
            },
            RunInputDef {
                name: "items".into(),
                kind: None,
                schema: Some(json!({"type": "array", "items": {"type": "integer"}})),
                default: None,
                description: None,
            },
        ]),
        schedules: Vec::new(),
        nodes: vec![
            NodeDef {
                id: "first".into(),
                dependencies: vec![],
                action: "shell".into(),
                inputs: vec![InputSpec {
                    name: "cmd".into(),
                    description: Some("what to run".into()),
                    reference: None,
                    value: Some(json!({"k": [1, 2.5, null, "s", true]})),
                }],
                outputs: vec![OutputSpec {
                    name: "items".into(),
                    description: Some("a list".into()),
                }],
                failure: Some("cleanup".into()),
                onfailure: true,
                timeout: Some(1.5),
                try_count: Some(4),
                description: Some("first node".into()),
                map_over: None,
                cache: true,
                when: None,
                approval: Some("ok?".into()),
                sleep: None,
                wait_until: None,
                wait_for: None,
            },
            NodeDef {
                id: "second".into(),
                dependencies: vec!["first".into()],
                action: "echo".into(),
                inputs: vec![InputSpec::reference("x", "first.items")],
                outputs: vec![],
                failure: None,
                onfailure: false,
                timeout: None,
                try_count: None,
                description: None,
                map_over: Some("first.items".into()),
                cache: false,
                when: Some("inputs.go".into()),
                approval: None,
                sleep: None,
                wait_until: None,
                wait_for: None,
            },
            NodeDef {
                id: "nap".into(),
                dependencies: vec!["second".into()],
                sleep: Some("1.5h".into()),
                ..NodeDef::default()
            },
            NodeDef {
                id: "until".into(),
                dependencies: vec!["nap".into()],
                wait_until: Some("{{ inputs.at }}".into()),
                ..NodeDef::default()
            },
            NodeDef {
                id: "paid".into(),
                dependencies: vec!["until".into()],
                wait_for: Some(WaitFor {
                    signal: "payment".into(),
                    matches: Some("/order == {{ inputs.order }}".into()),
                    timeout: Some("1h".into()),
                    on_timeout: OnTimeout::Skip,
                    schema: Some(json!({"type": "object"})),
                }),
                ..NodeDef::default()
            },
        ],
    };
    let text = serde_json::to_string_pretty(&def).expect("serialize");
    assert_eq!(load_yaml_str(&text, "full.json").expect("loads"), def);
}

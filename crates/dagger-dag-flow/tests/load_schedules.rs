//! `schedules:` in workflow YAML: read with their fields, and every bad
//! schedule reported at the file, line and column of the field at fault.

use dagger_dag_flow::{Overlap, load_yaml_str};

const GOOD: &str = "name: nightly
schedules:
  - name: night
    cron: \"30 2 * * *\"
    timezone: Europe/Berlin
    inputs: { region: eu }
    overlap: buffer_one
    catch_up: 1h
  - name: beat
    every: 10m
    paused: true
nodes:
  - id: a
    action: echo
";

#[test]
fn schedules_are_read() {
    let def = load_yaml_str(GOOD, "nightly.yaml").unwrap();
    assert_eq!(def.schedules.len(), 2);
    let night = &def.schedules[0];
    assert_eq!(night.cron.as_deref(), Some("30 2 * * *"));
    assert_eq!(night.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(night.inputs["region"], "eu");
    assert_eq!(night.overlap, Overlap::BufferOne);
    assert_eq!(def.schedules[1].every.as_deref(), Some("10m"));
    assert!(def.schedules[1].paused);
    assert_eq!(def.schedules[1].overlap, Overlap::Skip);
    // The definition snapshot a run records keeps them.
    let json = serde_json::to_value(&def).unwrap();
    let back: dagger_dag_flow::WorkflowDef = serde_json::from_value(json).unwrap();
    assert_eq!(back, def);
}

fn problems(text: &str) -> String {
    let errors = load_yaml_str(text, "w.yaml").unwrap_err();
    errors
        .issues()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bad_schedules_are_named_at_their_field() {
    let bad = GOOD
        .replace("30 2 * * *", "30 25 * * *")
        .replace("Europe/Berlin", "Europe/Nowhere")
        .replace("every: 10m", "every: 10 minutes");
    let text = problems(&bad);
    assert!(
        text.contains("w.yaml:4:11") && text.contains("invalid cron expression"),
        "{text}"
    );
    let tz = problems(&GOOD.replace("Europe/Berlin", "Europe/Nowhere"));
    assert!(
        tz.contains("w.yaml:5:15") && tz.contains("unknown time zone"),
        "{tz}"
    );
    assert!(
        text.contains("w.yaml:10:12") && text.contains("not a duration"),
        "{text}"
    );
    let twice = problems(&GOOD.replace("name: beat", "name: night"));
    assert!(
        twice.contains("w.yaml:9:5") && twice.contains("`night`"),
        "{twice}"
    );
    let overlap = problems(&GOOD.replace("buffer_one", "sometimes"));
    assert!(
        overlap.contains("w.yaml:7:14") && overlap.contains("buffer_all"),
        "{overlap}"
    );
}

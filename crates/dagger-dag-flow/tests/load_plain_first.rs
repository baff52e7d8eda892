//! The loader reads a tree without positions first and goes back for
//! positions only when it needs them: to report a problem, or to read a
//! number's spelling as text. These cases need the second reading; they
//! must load (or fail) exactly as if positions had been there all along.

use dagger_dag_flow::load_yaml_str;

#[test]
fn a_number_read_as_text_keeps_its_spelling() {
    let wf = load_yaml_str(
        "name: 2024\nversion: 1.10\nnodes:\n  - id: a\n    action: noop\n",
        "wf.yaml",
    )
    .unwrap();
    assert_eq!(wf.name, "2024");
    assert_eq!(wf.version.as_deref(), Some("1.10"));
}

#[test]
fn a_boolean_read_as_text_keeps_its_spelling() {
    let wf = load_yaml_str(
        "name: x\nversion: yes\nnodes:\n  - id: a\n    action: noop\n",
        "wf.yaml",
    );
    // YAML 1.2 reads `yes` as a string, 1.1 as a boolean; either way the
    // text is what was written.
    assert_eq!(wf.unwrap().version.as_deref(), Some("yes"));
}

#[test]
fn a_problem_after_a_valid_looking_start_is_reported_at_its_position() {
    let errors = load_yaml_str(
        "name: x\nnodes:\n  - id: a\n    action: noop\n  - id: b\n    action: noop\n    dependencies: [c]\n",
        "wf.yaml",
    )
    .unwrap_err();
    let text = errors.to_string();
    assert!(text.starts_with("wf.yaml:7:"), "{text}");
    assert!(text.contains('c'), "{text}");
}

#[test]
fn a_numeric_key_is_reported_with_its_spelling_and_position() {
    let errors = load_yaml_str(
        "name: x\nnodes:\n  - id: a\n    action: noop\n    12.50: y\n",
        "wf.yaml",
    )
    .unwrap_err();
    let text = errors.to_string();
    assert!(text.starts_with("wf.yaml:5:5:"), "{text}");
    assert!(text.contains("`12.50`"), "{text}");
}

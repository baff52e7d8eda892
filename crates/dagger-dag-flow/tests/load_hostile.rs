//! Hostile input fails fast with a clear error: no panic, hang or stack
//! overflow. These run on the test harness's ordinary threads (2 MiB stacks),
//! so a stack-hungry parse would crash the test.

use dagger_dag_flow::{
    LoadIssueKind, MAX_INPUT_BYTES, MAX_NESTING_DEPTH, load_yaml_bytes, load_yaml_path,
    load_yaml_str,
};

fn single(
    result: Result<dagger_dag_flow::WorkflowDef, dagger_dag_flow::LoadErrors>,
) -> dagger_dag_flow::LoadIssue {
    let mut issues = result.expect_err("must fail").into_issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    issues.remove(0)
}

#[test]
fn deep_block_nesting_is_refused_at_the_limit() {
    // 20,000 levels of compact block sequences: `- - - ... x`.
    let text = format!("{}x\n", "- ".repeat(20_000));
    let issue = single(load_yaml_str(&text, "deep.yaml"));
    assert_eq!(
        issue.kind,
        LoadIssueKind::LimitExceeded(format!("nesting deeper than {MAX_NESTING_DEPTH} levels"))
    );
    assert_eq!(issue.line, Some(1));

    // Indented mappings (quadratic in size, so 2,000 levels).
    let mut text = String::new();
    for depth in 0..2_000 {
        text.push_str(&" ".repeat(depth));
        text.push_str("a:\n");
    }
    let issue = single(load_yaml_str(&text, "deep.yaml"));
    assert_eq!(
        issue.kind,
        LoadIssueKind::LimitExceeded(format!("nesting deeper than {MAX_NESTING_DEPTH} levels"))
    );
    assert_eq!(
        issue.line,
        Some(MAX_NESTING_DEPTH + 1),
        "points at the first level too deep"
    );
}

#[test]
fn deep_flow_nesting_is_refused() {
    let text = format!(
        "name: x\nnodes: {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let issue = single(load_yaml_str(&text, "flow.yaml"));
    assert_eq!(
        issue.kind,
        LoadIssueKind::LimitExceeded(format!("nesting deeper than {MAX_NESTING_DEPTH} levels"))
    );
    // `nodes: ` is 7 characters; the flow-nesting limit refuses the 33rd bracket.
    assert_eq!(
        (issue.line, issue.column),
        (Some(2), Some(7 + MAX_NESTING_DEPTH + 1))
    );
}

/// A workflow whose literal input value nests lists so that the document's
/// depth is exactly `depth` (5 levels are the workflow's own structure).
fn nested_literal(depth: usize) -> String {
    let inner = depth - 5;
    format!(
        "name: deep\nnodes:\n  - id: a\n    action: echo\n    inputs:\n      - name: v\n        value: {}1{}\n",
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

#[test]
fn nesting_up_to_the_limit_is_accepted_and_one_more_is_not() {
    let def = load_yaml_str(&nested_literal(MAX_NESTING_DEPTH), "ok.yaml").expect("at the limit");
    let mut value = def.nodes[0].inputs[0].value.as_ref().expect("value");
    let mut levels = 0;
    while let Some(inner) = value.as_array() {
        levels += 1;
        value = &inner[0];
    }
    assert_eq!(levels, MAX_NESTING_DEPTH - 5);
    let issue = single(load_yaml_str(
        &nested_literal(MAX_NESTING_DEPTH + 1),
        "deep.yaml",
    ));
    assert_eq!(
        issue.kind,
        LoadIssueKind::LimitExceeded(format!("nesting deeper than {MAX_NESTING_DEPTH} levels"))
    );
}

#[test]
fn invalid_utf8_is_located_at_the_first_bad_byte() {
    let bytes = b"name: ok\nnodes:\n  - id: a\xff\xfe\n    action: echo\n";
    let issue = single(load_yaml_bytes(bytes, "bad.yaml"));
    assert_eq!(issue.kind, LoadIssueKind::InvalidUtf8);
    assert_eq!(issue.to_string(), "bad.yaml:3:10: input is not valid UTF-8");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("invalid_utf8.yaml");
    std::fs::write(&path, bytes).expect("write");
    let issue = single(load_yaml_path(&path));
    assert_eq!(issue.kind, LoadIssueKind::InvalidUtf8);
    assert_eq!((issue.line, issue.column), (Some(3), Some(10)));
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let text = format!("# {}\n", "x".repeat(MAX_INPUT_BYTES));
    let issue = single(load_yaml_str(&text, "big.yaml"));
    assert_eq!(
        issue.kind,
        LoadIssueKind::TooLarge {
            size: text.len() as u64,
            limit: MAX_INPUT_BYTES as u64
        }
    );
    assert_eq!(issue.line, None);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.yaml");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(MAX_INPUT_BYTES as u64 + 10)
        .expect("sparse file");
    let issue = single(load_yaml_path(&path));
    assert_eq!(
        issue.to_string(),
        format!(
            "{}: input is {} bytes, more than the limit of {MAX_INPUT_BYTES} bytes",
            path.display(),
            MAX_INPUT_BYTES + 10
        )
    );
}

#[test]
fn billion_laughs_in_a_string_hits_the_alias_budget() {
    let mut text = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let mut prev = 'a';
    for c in "bcdefghijklmnop".chars() {
        let refs = vec![format!("*{prev}"); 10].join(", ");
        text.push_str(&format!("{c}: &{c} [{refs}]\n"));
        prev = c;
    }
    let issue = single(load_yaml_str(&text, "bomb.yaml"));
    assert!(
        matches!(issue.kind, LoadIssueKind::LimitExceeded(_)),
        "{issue}"
    );
}

#[test]
fn scalars_and_nulls_at_the_top_are_not_workflows() {
    let issue = single(load_yaml_str("hello\n", "s.yaml"));
    assert_eq!(issue.kind, LoadIssueKind::NotAMapping { found: "a string" });
    for text in ["", "   \n", "# only a comment\n", "---\n", "~\n"] {
        let issue = single(load_yaml_str(text, "e.yaml"));
        assert_eq!(issue.kind, LoadIssueKind::EmptyDocument, "{text:?}");
    }
}

#[test]
fn missing_file_is_an_io_issue_naming_the_file() {
    let issue = single(load_yaml_path("/nonexistent/dir/wf.yaml"));
    assert!(matches!(issue.kind, LoadIssueKind::Io(_)));
    assert!(
        issue
            .to_string()
            .starts_with("/nonexistent/dir/wf.yaml: cannot read: "),
        "{issue}"
    );
}

#[test]
fn control_characters_in_syntax_errors_stay_on_one_line() {
    let errors = load_yaml_str("name: \"a\u{7}b\nnodes: [\n", "ctl.yaml").expect_err("bad");
    for issue in errors.issues() {
        assert!(!issue.to_string().contains('\n'), "{issue}");
    }
}

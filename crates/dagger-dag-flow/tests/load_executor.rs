//! Loading through the executor: strings, files, directories, listing and
//! filtering, and what happens on clashes and partial failures.

use dagger_core::Stores;
use dagger_dag_flow::{ActionRegistry, DagExecutor, LoadIssueKind, STRING_SOURCE};
use std::path::Path;

async fn executor() -> DagExecutor {
    DagExecutor::new(None, ActionRegistry::new(), Stores::memory())
        .await
        .expect("executor")
}

fn workflow(name: &str, tags: &[&str]) -> String {
    format!(
        "name: {name}\ndescription: the {name} flow\nauthor: me\nversion: '2'\ntags: [{}]\nnodes:\n  - id: a\n    action: echo\n",
        tags.join(", ")
    )
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).expect("write fixture");
}

#[tokio::test]
async fn load_yaml_string_lists_filters_and_describes() {
    let mut ex = executor().await;
    assert_eq!(
        ex.load_yaml_string(&workflow("etl", &["prod", "etl"]))
            .expect("etl"),
        "etl"
    );
    assert_eq!(
        ex.load_yaml_string(&workflow("report", &["prod"]))
            .expect("report"),
        "report"
    );
    assert!(ex.has_dag("etl"));
    assert!(!ex.has_dag("nope"));
    assert_eq!(ex.list_dags(), ["etl", "report"]);
    assert_eq!(ex.list_dags_by_tags(&["prod"]), ["etl", "report"]);
    assert_eq!(
        ex.list_dags_by_tags(&["prod", "etl"]),
        ["etl"],
        "all tags must match"
    );
    assert!(ex.list_dags_by_tags(&["etl", "missing"]).is_empty());
    let meta = ex.get_dag_metadata("etl").expect("metadata");
    assert_eq!(
        (
            meta.description.as_str(),
            meta.author.as_str(),
            meta.version.as_str(),
            meta.node_count
        ),
        ("the etl flow", "me", "2", 1)
    );
    assert_eq!(ex.workflow("etl").expect("etl").source, STRING_SOURCE);
}

#[tokio::test]
async fn an_invalid_string_loads_nothing_and_reports_string_source() {
    let mut ex = executor().await;
    let errors = ex
        .load_yaml_string("name: x\nnodes:\n  - id: a\n")
        .expect_err("no action");
    assert_eq!(
        errors.to_string(),
        "<string>:3:5: node `a`: missing required field `action`"
    );
    assert!(ex.list_dags().is_empty());
}

#[tokio::test]
async fn load_yaml_file_replaces_its_own_workflow_and_refuses_a_clash() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "one.yaml", &workflow("etl", &[]));
    write(dir.path(), "two.yaml", &workflow("etl", &[]));
    let mut ex = executor().await;
    let one = dir.path().join("one.yaml");
    assert_eq!(ex.load_yaml_file(&one).expect("first"), "etl");
    write(dir.path(), "one.yaml", &workflow("etl", &["v2"]));
    ex.load_yaml_file(&one).expect("reload of the same file");
    assert_eq!(ex.list_dags_by_tags(&["v2"]), ["etl"]);
    let two = dir.path().join("two.yaml");
    let errors = ex.load_yaml_file(&two).expect_err("clash");
    assert_eq!(
        errors.issues()[0].kind,
        LoadIssueKind::AlreadyLoaded {
            name: "etl".into(),
            existing: one.display().to_string()
        }
    );
    assert_eq!(
        errors.to_string(),
        format!(
            "{}: workflow `etl` is already loaded (from {})",
            two.display(),
            one.display()
        )
    );
}

#[tokio::test]
async fn load_yaml_dir_reports_every_file_and_loads_nothing_on_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yaml", &workflow("alpha", &[]));
    write(dir.path(), "b.yml", &workflow("beta", &[]));
    write(
        dir.path(),
        "c.yaml",
        "name: gamma\nnodes:\n  - id: x\n    action: echo\n    dependencies: [y]\n",
    );
    write(dir.path(), "d.yaml", "- not a workflow\n");
    write(dir.path(), "notes.txt", "not yaml at all: [");
    write(dir.path(), ".hidden.yaml", "garbage: [");
    let mut ex = executor().await;
    let errors = ex.load_yaml_dir(dir.path()).expect_err("two bad files");
    let lines: Vec<String> = errors.issues().iter().map(ToString::to_string).collect();
    let c = dir.path().join("c.yaml").display().to_string();
    let d = dir.path().join("d.yaml").display().to_string();
    assert_eq!(
        lines,
        [
            format!("{c}:5:20: node `x` depends on `y`, which is not a node of this workflow"),
            format!("{d}:1:1: a workflow must be a mapping with `name` and `nodes`, found a list"),
        ]
    );
    assert!(ex.list_dags().is_empty(), "all or nothing");

    std::fs::remove_file(dir.path().join("c.yaml")).expect("rm");
    std::fs::remove_file(dir.path().join("d.yaml")).expect("rm");
    assert_eq!(
        ex.load_yaml_dir(dir.path()).expect("valid dir"),
        ["alpha", "beta"]
    );
    assert_eq!(ex.list_dags(), ["alpha", "beta"]);
    // Loading the same directory again replaces, it does not clash.
    assert_eq!(
        ex.load_yaml_dir(dir.path()).expect("reload"),
        ["alpha", "beta"]
    );
}

#[tokio::test]
async fn load_yaml_dir_refuses_two_files_with_one_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yaml", &workflow("same", &[]));
    write(dir.path(), "b.yaml", &workflow("same", &[]));
    let mut ex = executor().await;
    let errors = ex.load_yaml_dir(dir.path()).expect_err("clash");
    assert_eq!(
        errors.issues()[0].kind,
        LoadIssueKind::AlreadyLoaded {
            name: "same".into(),
            existing: dir.path().join("a.yaml").display().to_string()
        }
    );
    assert_eq!(
        errors.issues()[0].file,
        dir.path().join("b.yaml").display().to_string()
    );
    assert!(ex.list_dags().is_empty());
}

#[tokio::test]
async fn load_yaml_dir_on_a_missing_dir_names_it() {
    let mut ex = executor().await;
    let errors = ex.load_yaml_dir("/nonexistent/flows").expect_err("missing");
    assert!(
        errors
            .to_string()
            .starts_with("/nonexistent/flows: cannot read: "),
        "{errors}"
    );
}

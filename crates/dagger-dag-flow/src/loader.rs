//! Loading workflow definitions from YAML: text, files and directories.
//! Every load parses once, reads every field, runs every semantic check and
//! reports all problems together (see [`LoadErrors`]).

use crate::action::ActionRegistry;
use crate::action_schemas::check_action_schemas;
use crate::error::{DagError, LoadErrors, LoadIssue, LoadIssueKind};
use crate::executor::DagExecutor;
use crate::model::WorkflowDef;
use crate::shape::Shape;
use crate::validate::{Found, attach, check_actions, check_workflow};
use crate::yaml::{self, MAX_INPUT_BYTES, Pos, Source, YNode, YValue};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The source name of definitions loaded from a string.
pub const STRING_SOURCE: &str = "<string>";

/// Parses and validates one workflow from YAML text. `source_name` names the
/// text in the issues (usually its file name).
///
/// ```
/// let errors = dagger_dag_flow::load_yaml_str("name: x\nnodes: []\n", "wf.yaml").unwrap_err();
/// assert_eq!(
///     errors.to_string(),
///     "wf.yaml:2:1: `nodes` is empty; a workflow needs at least one node"
/// );
/// ```
pub fn load_yaml_str(text: &str, source_name: &str) -> Result<WorkflowDef, LoadErrors> {
    load(text, source_name, None)
}

/// [`load_yaml_str`], also reporting every `action` and `failure` that
/// `actions` does not hold, at its position (what `dagger validate` does).
pub fn load_yaml_str_with_actions(
    text: &str,
    source_name: &str,
    actions: &ActionRegistry,
) -> Result<WorkflowDef, LoadErrors> {
    load(text, source_name, Some(actions))
}

fn load(
    text: &str,
    source_name: &str,
    actions: Option<&ActionRegistry>,
) -> Result<WorkflowDef, LoadErrors> {
    // Most loads are of valid files, which need no positions: read a tree
    // without them first. Any problem (or a number whose spelling is needed)
    // sends the load down the positioned path, which reports exactly what
    // it always did.
    if let Some(root) = yaml::parse_plain(text) {
        let source = Source::new(text);
        if let Ok(def) = read_root(&root, &source, actions)
            && !source.lacked_span()
        {
            return Ok(def);
        }
    }
    let one = |(pos, kind): (Option<Pos>, LoadIssueKind)| {
        LoadErrors(attach(source_name, vec![(pos, kind)]))
    };
    let root = yaml::parse(text).map_err(|found| one(*found))?;
    read_root(&root, &Source::new(text), actions)
        .map_err(|found| LoadErrors(attach(source_name, found)))
}

/// Reads and checks a parsed workflow: the definition, or every problem found.
fn read_root(
    root: &YNode,
    source: &Source<'_>,
    actions: Option<&ActionRegistry>,
) -> Result<WorkflowDef, Vec<Found>> {
    match &root.value {
        YValue::Map(_) => {}
        YValue::Null => return Err(vec![(root.pos, LoadIssueKind::EmptyDocument)]),
        other => {
            return Err(vec![(
                root.pos,
                LoadIssueKind::NotAMapping {
                    found: other.describe(),
                },
            )]);
        }
    }
    let mut shape = Shape::new(source);
    let (def, locations) = shape.workflow(root);
    let mut found = shape.found;
    found.extend(check_workflow(&def, &locations));
    if let Some(registry) = actions {
        found.extend(check_actions(&def, &locations, registry));
        found.extend(check_action_schemas(&def, &locations, registry));
    }
    if found.is_empty() {
        Ok(def)
    } else {
        Err(found)
    }
}

/// Like [`load_yaml_str`] for bytes that may not be UTF-8: invalid UTF-8 is
/// reported at the line and column of the first bad byte.
pub fn load_yaml_bytes(bytes: &[u8], source_name: &str) -> Result<WorkflowDef, LoadErrors> {
    load_bytes(bytes, source_name, None)
}

fn load_bytes(
    bytes: &[u8],
    source_name: &str,
    actions: Option<&ActionRegistry>,
) -> Result<WorkflowDef, LoadErrors> {
    match std::str::from_utf8(bytes) {
        Ok(text) => load(text, source_name, actions),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // The prefix is valid UTF-8 by construction.
            let prefix = String::from_utf8_lossy(valid);
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(LoadErrors(vec![LoadIssue {
                file: source_name.to_string(),
                line: Some(line),
                column: Some(column),
                kind: LoadIssueKind::InvalidUtf8,
            }]))
        }
    }
}

/// Reads, parses and validates the workflow file at `path`. Files larger
/// than the loader's limit are refused before they are read whole.
pub fn load_yaml_path(path: impl AsRef<Path>) -> Result<WorkflowDef, LoadErrors> {
    load_path(path.as_ref(), None)
}

/// [`load_yaml_path`], also reporting every `action` and `failure` that
/// `actions` does not hold, at its position.
pub fn load_yaml_path_with_actions(
    path: impl AsRef<Path>,
    actions: &ActionRegistry,
) -> Result<WorkflowDef, LoadErrors> {
    load_path(path.as_ref(), Some(actions))
}

fn load_path(path: &Path, actions: Option<&ActionRegistry>) -> Result<WorkflowDef, LoadErrors> {
    let name = path.display().to_string();
    let bytes = read_limited(path).map_err(|kind| {
        LoadErrors(vec![LoadIssue {
            file: name.clone(),
            line: None,
            column: None,
            kind,
        }])
    })?;
    load_bytes(&bytes, &name, actions)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, LoadIssueKind> {
    let file = std::fs::File::open(path).map_err(|e| LoadIssueKind::Io(e.to_string()))?;
    let limit = MAX_INPUT_BYTES as u64;
    let mut bytes = Vec::new();
    // Read one byte past the limit to tell "at the limit" from "over it",
    // without trusting metadata (pipes and /proc files report 0).
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| LoadIssueKind::Io(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(LoadIssueKind::TooLarge {
            size: std::fs::metadata(path).map_or(limit + 1, |m| m.len()),
            limit,
        });
    }
    Ok(bytes)
}

/// The workflow files of `dir`: `*.yaml` and `*.yml`, not hidden, sorted by name.
fn workflow_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, LoadIssueKind> {
    let entries = std::fs::read_dir(dir).map_err(|e| LoadIssueKind::Io(e.to_string()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| LoadIssueKind::Io(e.to_string()))?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        let yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        if yaml && !hidden && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn already_loaded(file: &str, err: DagError) -> LoadErrors {
    let kind = match err {
        DagError::DuplicateDag { name, existing } => {
            LoadIssueKind::AlreadyLoaded { name, existing }
        }
        other => LoadIssueKind::Io(other.to_string()),
    };
    LoadErrors(vec![LoadIssue {
        file: file.to_string(),
        line: None,
        column: None,
        kind,
    }])
}

impl DagExecutor {
    /// Loads the workflow file at `path` and returns its name. Loading the
    /// same file again replaces the definition; a workflow of the same name
    /// from another source is an [`LoadIssueKind::AlreadyLoaded`] issue.
    pub fn load_yaml_file(&mut self, path: impl AsRef<Path>) -> Result<String, LoadErrors> {
        let path = path.as_ref();
        let def = load_yaml_path(path)?;
        let source = path.display().to_string();
        let name = def.name.clone();
        self.insert_workflow(def, source.as_str())
            .map_err(|e| already_loaded(&source, e))?;
        Ok(name)
    }

    /// Loads a workflow from YAML text and returns its name. Its source is
    /// [`STRING_SOURCE`], so loading a new version of the same workflow from a
    /// string replaces it.
    pub fn load_yaml_string(&mut self, text: &str) -> Result<String, LoadErrors> {
        let def = load_yaml_str(text, STRING_SOURCE)?;
        let name = def.name.clone();
        self.insert_workflow(def, STRING_SOURCE)
            .map_err(|e| already_loaded(STRING_SOURCE, e))?;
        Ok(name)
    }

    /// Loads every `*.yaml` / `*.yml` file of `dir` (not recursively, hidden
    /// files skipped) and returns their workflow names in file-name order.
    /// All or nothing: if any file has a problem, or two files define the same
    /// workflow, nothing is loaded and the problems of every file are returned.
    pub fn load_yaml_dir(&mut self, dir: impl AsRef<Path>) -> Result<Vec<String>, LoadErrors> {
        let dir = dir.as_ref();
        let files = workflow_files(dir).map_err(|kind| {
            LoadErrors(vec![LoadIssue {
                file: dir.display().to_string(),
                line: None,
                column: None,
                kind,
            }])
        })?;
        let mut issues = Vec::new();
        let mut loaded: Vec<(WorkflowDef, String)> = Vec::with_capacity(files.len());
        let mut names: HashMap<String, String> = HashMap::new();
        for path in &files {
            let source = path.display().to_string();
            match load_yaml_path(path) {
                Err(errors) => issues.extend(errors),
                Ok(def) => {
                    let clash = names.get(&def.name).cloned().or_else(|| {
                        self.workflow(&def.name)
                            .ok()
                            .filter(|w| w.source != source)
                            .map(|w| w.source.clone())
                    });
                    match clash {
                        Some(existing) => issues.push(LoadIssue {
                            file: source,
                            line: None,
                            column: None,
                            kind: LoadIssueKind::AlreadyLoaded {
                                name: def.name,
                                existing,
                            },
                        }),
                        None => {
                            names.insert(def.name.clone(), source.clone());
                            loaded.push((def, source));
                        }
                    }
                }
            }
        }
        if !issues.is_empty() {
            return Err(LoadErrors(issues));
        }
        let mut out = Vec::with_capacity(loaded.len());
        for (def, source) in loaded {
            out.push(def.name.clone());
            self.insert_workflow(def, source.as_str())
                .map_err(|e| already_loaded(&source, e))?;
        }
        Ok(out)
    }
}

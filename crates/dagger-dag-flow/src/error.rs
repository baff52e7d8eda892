//! Errors of the DAG Flow crate.

/// Errors of [`crate::DagExecutor`] operations.
#[derive(Debug, thiserror::Error)]
pub enum DagError {
    /// No workflow with this name is loaded.
    #[error("no workflow named `{0}` is loaded")]
    UnknownDag(String),
    /// A workflow with this name is loaded already (from another source).
    #[error("workflow `{name}` is already loaded (from {existing})")]
    DuplicateDag {
        /// The workflow's name.
        name: String,
        /// Where the loaded one came from.
        existing: String,
    },
    /// Two `#[action]` functions, or an annotated function and an action
    /// already in the registry, share a name (see
    /// [`crate::register_all_actions`]). Nothing was registered.
    #[error(
        "action `{name}` is defined more than once (by two `#[action]` functions, or one and an action already registered)"
    )]
    DuplicateAction {
        /// The shared name.
        name: String,
    },
    /// The effective configuration is invalid.
    #[error("invalid configuration: {field} {message}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A stored cache snapshot cannot be read back.
    #[error("cache snapshot `{scope}` is unreadable: {reason}")]
    Snapshot {
        /// The snapshot's scope.
        scope: String,
        /// Why.
        reason: String,
    },
    /// The inputs given to a run do not match the workflow's declared
    /// `inputs:`; nothing ran.
    #[error("workflow `{workflow}`: {}", join_problems(.problems))]
    InvalidRunInputs {
        /// The workflow.
        workflow: String,
        /// Every problem, one per input.
        problems: Vec<RunInputProblem>,
    },
    /// Workflow `0` is loaded but this executor has not run it (the
    /// executor-level metrics and node states describe its latest run).
    #[error("workflow `{0}` has not run in this executor")]
    NotRun(String),
    /// The workflow has no node of this id.
    #[error("workflow `{dag}` has no node `{node}`")]
    UnknownNode {
        /// The workflow.
        dag: String,
        /// The node id asked for.
        node: String,
    },
    /// A node of this id exists already ([`crate::DagExecutor::add_node`]).
    #[error("node `{0}` already exists")]
    NodeAlreadyExists(String),
    /// A dependency names no node of the workflow ([`crate::DagExecutor::add_node`]).
    #[error("dependency `{0}` is not a node of the workflow")]
    DependencyNotFound(String),
    /// A run, or a node added to a workflow, is invalid (unknown action,
    /// cycle, bad reference): the message says which and where.
    #[error("invalid workflow: {0}")]
    ValidationError(String),
    /// A run exceeded its `timeout_seconds`; the message names the run.
    #[error("execution timed out: {0}")]
    ExecutionTimeout(String),
    /// A run ended because node `node_id` failed for good.
    #[error("node `{node_id}` failed: {error}")]
    NodeExecutionError {
        /// The node.
        node_id: String,
        /// Its last error.
        error: String,
    },
    /// A run ended without completing for another reason (cancelled,
    /// paused, waiting for a human); the message gives the status and why.
    #[error("run `{run_id}` did not complete: {reason}")]
    RunNotCompleted {
        /// The run.
        run_id: String,
        /// Its status and reason.
        reason: String,
    },
    /// The coordinator refused or lost the run (it exists already, another
    /// process owns it, nothing to resume, …); the message says which.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] dagger_core::StoreError),
}

fn join_problems(problems: &[RunInputProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `; did you mean `x`?` when there is a suggestion.
pub(crate) fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// What is wrong with one input given to a run, against the declaration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunInputProblem {
    /// A required input (no default) was not given.
    #[error("missing required input `{input}`")]
    Missing {
        /// The input.
        input: String,
    },
    /// The value does not have the declared type or match the declared schema.
    #[error("input `{input}` must be {expected}: {message}")]
    WrongType {
        /// The input.
        input: String,
        /// The declared type, or `valid against its schema`.
        expected: String,
        /// What is wrong with the value.
        message: String,
    },
    /// An input the workflow does not declare was given.
    #[error("unknown input `{input}`{}", hint(.suggestion))]
    Undeclared {
        /// The input.
        input: String,
        /// The closest declared name, if any is close.
        suggestion: Option<String>,
    },
}

impl RunInputProblem {
    /// The input concerned.
    pub fn input(&self) -> &str {
        match self {
            Self::Missing { input }
            | Self::WrongType { input, .. }
            | Self::Undeclared { input, .. } => input,
        }
    }
}

/// One problem found while loading or validating a workflow definition, with
/// where it is. Displays as `file:line:col: message` (or `file: message` when
/// the problem has no position, such as an unreadable file).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadIssue {
    /// The file the definition came from, or `<string>` / `<added nodes>`.
    pub file: String,
    /// 1-based line, when the problem has a position.
    pub line: Option<usize>,
    /// 1-based column (in characters), when the problem has a position.
    pub column: Option<usize>,
    /// What is wrong.
    pub kind: LoadIssueKind,
}

impl std::fmt::Display for LoadIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(col)) => write!(f, "{}:{line}:{col}: {}", self.file, self.kind),
            (Some(line), None) => write!(f, "{}:{line}: {}", self.file, self.kind),
            _ => write!(f, "{}: {}", self.file, self.kind),
        }
    }
}

impl std::error::Error for LoadIssue {}

/// Every problem of one load, in file order. Displays one issue per line.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadErrors(pub Vec<LoadIssue>);

impl LoadErrors {
    /// The issues.
    pub fn issues(&self) -> &[LoadIssue] {
        &self.0
    }

    /// The issues, owned.
    pub fn into_issues(self) -> Vec<LoadIssue> {
        self.0
    }
}

impl std::fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl IntoIterator for LoadErrors {
    type Item = LoadIssue;
    type IntoIter = std::vec::IntoIter<LoadIssue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// What is wrong with a workflow definition. Each message names the culprit
/// (field, node, input, reference).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadIssueKind {
    /// The file or directory could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// The input is larger than the loader accepts.
    #[error("input is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The bytes are not UTF-8; the position is the first invalid byte.
    #[error("input is not valid UTF-8")]
    InvalidUtf8,
    /// The text is not well-formed YAML.
    #[error("YAML syntax error: {0}")]
    Syntax(String),
    /// The YAML breaches a size, nesting or alias budget (hostile or runaway input).
    #[error("YAML exceeds a safety limit: {0}")]
    LimitExceeded(String),
    /// The document holds no value (empty file, only comments, or `~`).
    #[error("the document is empty; a workflow is a mapping with `name` and `nodes`")]
    EmptyDocument,
    /// The top level is not a mapping.
    #[error("a workflow must be a mapping with `name` and `nodes`, found {found}")]
    NotAMapping {
        /// What was found instead (`a list`, `a string`, ...).
        found: &'static str,
    },
    /// A nested entry (node, input, output, config) is not a mapping.
    #[error("{context}: expected a mapping, found {found}")]
    ExpectedMapping {
        /// Which entry (`node #2`, `node \`a\`, input #1`, `config`).
        context: String,
        /// What was found instead.
        found: &'static str,
    },
    /// A field the model does not have.
    #[error("{context}: unknown field `{field}`, expected one of {expected}{}", hint(.suggestion))]
    UnknownField {
        /// Where (`workflow`, `node \`a\``, ...).
        context: String,
        /// The unknown field.
        field: String,
        /// The fields allowed there.
        expected: String,
        /// The allowed field most like it, if one is close.
        suggestion: Option<String>,
    },
    /// A field given twice in the same mapping.
    #[error("{context}: field `{field}` is given more than once")]
    DuplicateField {
        /// Where.
        context: String,
        /// The repeated field.
        field: String,
    },
    /// A required field is absent.
    #[error("{context}: missing required field `{field}`")]
    MissingField {
        /// Where.
        context: String,
        /// The missing field.
        field: &'static str,
    },
    /// A field's value has the wrong type or an out-of-range value.
    #[error("{context}: field `{field}`: {message}")]
    WrongType {
        /// Where.
        context: String,
        /// The field.
        field: String,
        /// What was expected and found.
        message: String,
    },
    /// A required text field is empty or blank.
    #[error("{context}: `{field}` must not be empty")]
    EmptyValue {
        /// Where.
        context: String,
        /// The field.
        field: &'static str,
    },
    /// `nodes` is an empty list.
    #[error("`nodes` is empty; a workflow needs at least one node")]
    NoNodes,
    /// Two nodes share an id.
    #[error("node id `{id}` is used by more than one node")]
    DuplicateNodeId {
        /// The id.
        id: String,
    },
    /// A node id that references could not name.
    #[error("node id `{id}` {reason}")]
    InvalidNodeId {
        /// The id.
        id: String,
        /// Why it is not allowed.
        reason: &'static str,
    },
    /// A node lists itself as a dependency.
    #[error("node `{node}` depends on itself")]
    SelfDependency {
        /// The node.
        node: String,
    },
    /// A dependency names no node.
    #[error(
        "node `{node}` depends on `{dependency}`, which is not a node of this workflow{}",
        hint(.suggestion)
    )]
    MissingDependency {
        /// The node.
        node: String,
        /// The unknown dependency.
        dependency: String,
        /// The node id most like it, if one is close.
        suggestion: Option<String>,
    },
    /// A dependency listed twice by the same node.
    #[error("node `{node}` lists dependency `{dependency}` more than once")]
    DuplicateDependency {
        /// The node.
        node: String,
        /// The repeated dependency.
        dependency: String,
    },
    /// Dependencies form a cycle; the path starts and ends at the same node,
    /// each node running before the next (`a -> b`: `b` depends on `a`).
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle {
        /// The node ids along the cycle, first repeated at the end.
        path: Vec<String>,
    },
    /// A reference that is neither `inputs.<key>` nor `<node_id>.<output>`.
    #[error(
        "node `{node}`: {site} has malformed reference `{reference}`; expected `inputs.<key>` or `<node_id>.<output>`"
    )]
    MalformedReference {
        /// The node holding the reference.
        node: String,
        /// Where in the node (`input \`x\``, `map_over`, `when`).
        site: String,
        /// The reference.
        reference: String,
    },
    /// A reference to a node that does not exist.
    #[error(
        "node `{node}`: {site} references `{reference}`, but there is no node `{target}`{}",
        hint(.suggestion)
    )]
    UnknownReferenceTarget {
        /// The node holding the reference.
        node: String,
        /// Where in the node.
        site: String,
        /// The reference.
        reference: String,
        /// The node it names.
        target: String,
        /// The node id most like it, if one is close.
        suggestion: Option<String>,
    },
    /// A reference to a node that is not a (transitive) dependency, so its
    /// output may not exist when the node runs.
    #[error(
        "node `{node}`: {site} references `{reference}`, but `{target}` is not among the node's dependencies (direct or transitive)"
    )]
    NonAncestorReference {
        /// The node holding the reference.
        node: String,
        /// Where in the node.
        site: String,
        /// The reference.
        reference: String,
        /// The node it names.
        target: String,
    },
    /// An input with both `reference` and `value`.
    #[error("node `{node}`: input `{input}` has both `reference` and `value`; give exactly one")]
    InputWithBothSources {
        /// The node.
        node: String,
        /// The input.
        input: String,
    },
    /// An input with neither `reference` nor `value`.
    #[error("node `{node}`: input `{input}` has neither `reference` nor `value`; give exactly one")]
    InputWithoutSource {
        /// The node.
        node: String,
        /// The input.
        input: String,
    },
    /// Two inputs of a node share a name.
    #[error("node `{node}`: input `{input}` is declared more than once")]
    DuplicateInput {
        /// The node.
        node: String,
        /// The input.
        input: String,
    },
    /// Two outputs of a node share a name.
    #[error("node `{node}`: output `{output}` is declared more than once")]
    DuplicateOutput {
        /// The node.
        node: String,
        /// The output.
        output: String,
    },
    /// A node field with a value outside its domain (`timeout: 0`, `try_count: 0`).
    #[error("node `{node}`: `{field}` {message}")]
    InvalidNodeValue {
        /// The node.
        node: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A `config:` value that [`crate::DagConfig::problems`] rejects.
    #[error("config: `{field}` {message}")]
    InvalidConfig {
        /// The config field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A node names an action (or failure action) the given registry does not
    /// hold; only reported by the `*_with_actions` loaders.
    #[error("node `{node}`: unknown {field} `{action}`; registered actions: {known}{}", hint(.suggestion))]
    UnknownAction {
        /// The node.
        node: String,
        /// `action` or `failure`.
        field: &'static str,
        /// The unknown name.
        action: String,
        /// The registered names.
        known: String,
        /// The registered name most like it, if one is close.
        suggestion: Option<String>,
    },
    /// A declared run input (the workflow's `inputs:`) is malformed: an
    /// empty or repeated name, both `type` and `schema`, an invalid schema,
    /// or a default that does not match.
    #[error("run input `{input}`: {message}")]
    InvalidRunInput {
        /// The input (`#n` when it has no name).
        input: String,
        /// What is wrong.
        message: String,
    },
    /// A reference names a run input that the workflow's `inputs:` does not declare.
    #[error(
        "node `{node}`, {site}: `{reference}` names run input `{input}`, which the workflow's `inputs:` does not declare{}",
        hint(.suggestion)
    )]
    UndeclaredRunInput {
        /// The node holding the reference.
        node: String,
        /// Where in the node.
        site: String,
        /// The reference.
        reference: String,
        /// The input it names.
        input: String,
        /// The closest declared input, if any is close.
        suggestion: Option<String>,
    },
    /// A reference names an output that the upstream node's action declares
    /// no such output for (its output schema lists `properties` without it);
    /// only reported by the `*_with_actions` loaders.
    #[error(
        "node `{node}`, {site}: `{reference}` names output `{}` of node `{}`, but action `{action}` declares only {declared}",
        reference.split_once('.').map_or("", |(_, o)| o),
        reference.split_once('.').map_or("", |(n, _)| n)
    )]
    UndeclaredOutput {
        /// The node holding the reference.
        node: String,
        /// Where in the node.
        site: String,
        /// The reference (`<node>.<output>`).
        reference: String,
        /// The upstream node's action.
        action: String,
        /// The outputs the schema declares, and the closest one when one is
        /// close (`` `total`; did you mean `total`? ``).
        declared: String,
    },
    /// A node's inputs contradict its action's input schema (a required input
    /// is missing, or a literal has the wrong JSON type); only reported by the
    /// `*_with_actions` loaders.
    #[error("node `{node}`: {message} (input schema of action `{action}`)")]
    ActionInputMismatch {
        /// The node.
        node: String,
        /// Its action.
        action: String,
        /// What is wrong.
        message: String,
    },
    /// The executor already holds a workflow of this name from another source.
    #[error("workflow `{name}` is already loaded (from {existing})")]
    AlreadyLoaded {
        /// The workflow's name.
        name: String,
        /// Where the loaded one came from.
        existing: String,
    },
}

/// A schedule (`schedules:`) that cannot fire as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule `{schedule}`: field `{field}`: {message}")]
pub struct ScheduleError {
    /// The schedule's name.
    pub schedule: String,
    /// The field that is wrong.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A read of the run's cache by an attempt that runs where the cache is not
/// (a remote worker gets its node's inputs only); see [`crate::CacheView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the run's cache is not available to this attempt (it runs on a remote worker): declare what the node reads as an input"
)]
pub struct CacheUnavailable;

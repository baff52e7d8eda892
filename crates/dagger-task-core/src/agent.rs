//! Agents: the [`TaskAgent`] trait, what an execution returns, the context it
//! receives, and the registry that maps names to agents.

use crate::error::TaskError;
use crate::manager::TaskManager;
use dagger_core::{BoxError, JobId, JsonSchema, TaskId};
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What an agent's execution produced.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// The task is done with this output.
    Completed(Value),
    /// The agent made its task depend on new tasks (or left it Blocked); it
    /// runs again once they complete, with
    /// [`TaskManager::get_dependency_outputs`] filled.
    WaitingForDependencies,
}

impl From<Value> for TaskOutcome {
    fn from(v: Value) -> Self {
        Self::Completed(v)
    }
}

/// An agent that executes tasks. Implement it directly, or use the
/// `#[task_agent]` macro on a function or an `impl` block.
#[async_trait::async_trait]
pub trait TaskAgent: Send + Sync + 'static {
    /// The name tasks use to select this agent.
    fn name(&self) -> &str;
    /// What the agent does.
    fn description(&self) -> &str {
        ""
    }
    /// The schema its input must match, if any.
    fn input_schema(&self) -> Option<&JsonSchema> {
        None
    }
    /// The schema its output must match, if any.
    fn output_schema(&self) -> Option<&JsonSchema> {
        None
    }
    /// Executes one attempt of a task.
    async fn execute(&self, input: Value, ctx: &TaskContext) -> Result<TaskOutcome, BoxError>;
}

/// What an executing agent knows about its task and can use to change it.
#[derive(Clone)]
pub struct TaskContext {
    pub(crate) task_id: TaskId,
    pub(crate) job_id: JobId,
    pub(crate) manager: TaskManager,
    pub(crate) idempotency_key: String,
    pub(crate) cancel: CancellationToken,
    pub(crate) attempt: u32,
    pub(crate) app_data: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl TaskContext {
    /// The task being executed.
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }
    /// Its job.
    pub fn job_id(&self) -> &JobId {
        &self.job_id
    }
    /// The manager, to read tasks and add tasks and dependencies.
    pub fn manager(&self) -> &TaskManager {
        &self.manager
    }
    /// `job/task/attempt`: stable for one attempt, for side effects that
    /// must happen once even though execution is at-least-once.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }
    /// Cancelled when the job is cancelled or the lease is lost; the agent
    /// should stop promptly.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }
    /// The attempt number (the lease's fencing token), from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// The application data given to [`TaskManager::with_app_data`], if it
    /// is a `T` (shared state: database pools, HTTP clients).
    pub fn app_data<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.app_data.as_deref()?.downcast_ref::<T>()
    }
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("task_id", &self.task_id)
            .field("job_id", &self.job_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Agents by name. Cheap to clone; clones share the same agents.
#[derive(Clone, Default)]
pub struct TaskAgentRegistry {
    agents: Arc<RwLock<HashMap<String, Arc<dyn TaskAgent>>>>,
}

impl TaskAgentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `agent` under `name`; a taken name is [`TaskError::DuplicateAgent`].
    pub fn register(
        &self,
        name: impl Into<String>,
        agent: Box<dyn TaskAgent>,
    ) -> Result<(), TaskError> {
        self.insert(name.into(), Arc::from(agent))
    }

    /// Registers `agent` under its own [`TaskAgent::name`].
    pub fn register_agent(&self, agent: Arc<dyn TaskAgent>) -> Result<(), TaskError> {
        self.insert(agent.name().to_string(), agent)
    }

    fn insert(&self, name: String, agent: Arc<dyn TaskAgent>) -> Result<(), TaskError> {
        let mut map = self.agents.write();
        if map.contains_key(&name) {
            return Err(TaskError::DuplicateAgent(name));
        }
        map.insert(name, agent);
        Ok(())
    }

    /// The agent registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn TaskAgent>> {
        self.agents.read().get(name).cloned()
    }

    /// Whether an agent is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.agents.read().contains_key(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.agents.read().keys().cloned().collect();
        v.sort();
        v
    }
}

impl std::fmt::Debug for TaskAgentRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskAgentRegistry")
            .field("agents", &self.names())
            .finish()
    }
}

type AgentFuture = Pin<Box<dyn Future<Output = Result<TaskOutcome, BoxError>> + Send>>;
type AgentFn = dyn Fn(Value, TaskContext) -> AgentFuture + Send + Sync;

/// An agent made from a closure that receives its input and an owned
/// context; handy for tests and small programs.
///
/// ```
/// use dagger_task_core::{FnAgent, TaskAgentRegistry, TaskOutcome};
/// let registry = TaskAgentRegistry::new();
/// let echo = FnAgent::new("echo", |input, _ctx| async move { Ok(TaskOutcome::Completed(input)) });
/// registry.register_agent(std::sync::Arc::new(echo)).unwrap();
/// assert!(registry.contains("echo"));
/// ```
pub struct FnAgent {
    name: String,
    description: String,
    input_schema: Option<JsonSchema>,
    output_schema: Option<JsonSchema>,
    f: Box<AgentFn>,
}

impl FnAgent {
    /// An agent named `name` that runs `f`.
    pub fn new<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Value, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<TaskOutcome, BoxError>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: String::new(),
            input_schema: None,
            output_schema: None,
            f: Box::new(move |v, ctx| Box::pin(f(v, ctx))),
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }

    /// Sets the input schema.
    pub fn with_input_schema(mut self, s: JsonSchema) -> Self {
        self.input_schema = Some(s);
        self
    }

    /// Sets the output schema.
    pub fn with_output_schema(mut self, s: JsonSchema) -> Self {
        self.output_schema = Some(s);
        self
    }
}

#[async_trait::async_trait]
impl TaskAgent for FnAgent {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn input_schema(&self) -> Option<&JsonSchema> {
        self.input_schema.as_ref()
    }
    fn output_schema(&self) -> Option<&JsonSchema> {
        self.output_schema.as_ref()
    }
    async fn execute(&self, input: Value, ctx: &TaskContext) -> Result<TaskOutcome, BoxError> {
        (self.f)(input, ctx.clone()).await
    }
}

//! [`Cli`], the builder of a `dagger` command over the calling binary's own
//! actions and agents, and [`App`], what every subcommand runs with.

use crate::actions::{BUILTIN_ACTIONS, builtin_registry, recording_groups};
use crate::error::CliError;
use dagger_dag_flow::{ActionRegistry, DagConfig, DagError, DagExecutor};
use dagger_pubsub::PubSubAgent;
use dagger_task_core::TaskAgentRegistry;
use std::any::Any;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

/// Shared application state, type-erased.
pub(crate) type AppData = Arc<dyn Any + Send + Sync>;

/// The `dagger` command over a binary's own code.
///
/// [`Cli::new`] knows every function annotated with `#[action]`,
/// `#[task_agent]` and `#[pubsub_agent]` in the program plus the built-in
/// actions `shell`, `sleep`, `echo` and `fail`; the other methods add
/// hand-registered code and shared state, or turn the built-ins off.
///
/// ```no_run
/// use dagger_commands::Cli;
/// use dagger_dag_flow::ActionRegistry;
///
/// struct HttpClient;
///
/// fn main() -> std::process::ExitCode {
///     let mine = ActionRegistry::new(); // register hand-written actions here
///     Cli::new().actions(mine).app_data(HttpClient).run()
/// }
/// ```
#[must_use = "a Cli does nothing until `run` is called"]
pub struct Cli {
    annotated: bool,
    builtins: bool,
    actions: Vec<ActionRegistry>,
    task_agents: Vec<TaskAgentRegistry>,
    pubsub_agents: Vec<Arc<dyn PubSubAgent>>,
    app_data: Option<AppData>,
}

impl Default for Cli {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("builtins", &self.builtins)
            .field("actions", &self.actions)
            .field("task_agents", &self.task_agents)
            .field("pubsub_agents", &self.pubsub_agents.len())
            .finish_non_exhaustive()
    }
}

impl Cli {
    /// Every annotated action, task agent and pub/sub agent of the program,
    /// plus the built-in actions.
    pub fn new() -> Self {
        Self {
            annotated: true,
            builtins: true,
            actions: Vec::new(),
            task_agents: Vec::new(),
            pubsub_agents: Vec::new(),
            app_data: None,
        }
    }

    /// Adds hand-registered actions. A name that another action (annotated,
    /// built-in or added before) already has is an error when the command runs.
    pub fn actions(mut self, registry: ActionRegistry) -> Self {
        self.actions.push(registry);
        self
    }

    /// Adds hand-registered task agents (a name already taken is an error
    /// when the command runs).
    pub fn task_agents(mut self, registry: TaskAgentRegistry) -> Self {
        self.task_agents.push(registry);
        self
    }

    /// The same as [`Self::task_agents`].
    pub fn agents(self, registry: TaskAgentRegistry) -> Self {
        self.task_agents(registry)
    }

    /// Adds hand-made pub/sub agents (listed by `dagger actions`).
    pub fn pubsub_agents(mut self, agents: impl IntoIterator<Item = Arc<dyn PubSubAgent>>) -> Self {
        self.pubsub_agents.extend(agents);
        self
    }

    /// Shared state (database pools, HTTP clients) handed to actions as
    /// `NodeCtx::app_data::<T>()` and to task agents as
    /// `TaskContext::app_data::<T>()`, in every subcommand that executes them.
    pub fn app_data<T: Any + Send + Sync>(mut self, data: T) -> Self {
        self.app_data = Some(Arc::new(data));
        self
    }

    /// Leaves out the built-in actions `shell`, `sleep`, `echo` and `fail`.
    pub fn without_builtins(mut self) -> Self {
        self.builtins = false;
        self
    }

    /// Checks the registrations (no name twice) and returns what the
    /// subcommands run with.
    pub fn build(self) -> Result<App, CliError> {
        let actions = ActionRegistry::new();
        let add_action = |action: Arc<dyn dagger_dag_flow::NodeAction>| {
            let name = action.name().to_string();
            if actions.contains(&name) {
                return Err(CliError::Duplicate {
                    kind: "action",
                    name,
                    why: "registered twice (by two `#[action]` functions or registries)",
                });
            }
            if self.builtins && BUILTIN_ACTIONS.contains(&name.as_str()) {
                return Err(CliError::Duplicate {
                    kind: "action",
                    name,
                    why: "a built-in action has that name; rename yours or call `Cli::without_builtins()`",
                });
            }
            actions.register(action);
            Ok(())
        };
        if self.annotated {
            for action in dagger_dag_flow::annotated_actions() {
                add_action(action)?;
            }
        }
        for registry in &self.actions {
            for name in registry.names() {
                if let Some(action) = registry.get(&name) {
                    add_action(action)?;
                }
            }
        }
        let task_agents = TaskAgentRegistry::new();
        let add_agent = |agent: Arc<dyn dagger_task_core::TaskAgent>| {
            let name = agent.name().to_string();
            if task_agents.contains(&name) {
                return Err(CliError::Duplicate {
                    kind: "task agent",
                    name,
                    why: "registered twice (by two `#[task_agent]` functions or registries)",
                });
            }
            if self.builtins && BUILTIN_ACTIONS.contains(&name.as_str()) {
                return Err(CliError::Duplicate {
                    kind: "task agent",
                    name,
                    why: "a built-in action (which serves as a task agent too) has that name; rename yours or call `Cli::without_builtins()`",
                });
            }
            task_agents
                .register_agent(agent)
                .map_err(|e| CliError::Other(e.to_string()))
        };
        if self.annotated {
            for agent in dagger_task_core::annotated_task_agents() {
                add_agent(agent)?;
            }
        }
        for registry in &self.task_agents {
            for name in registry.names() {
                if let Some(agent) = registry.get(&name) {
                    add_agent(agent)?;
                }
            }
        }
        let mut pubsub_agents = if self.annotated {
            dagger_pubsub::annotated_pubsub_agents()
        } else {
            Vec::new()
        };
        pubsub_agents.extend(self.pubsub_agents);
        let mut seen = std::collections::HashSet::new();
        if let Some(agent) = pubsub_agents.iter().find(|a| !seen.insert(a.name())) {
            return Err(CliError::Duplicate {
                kind: "pub/sub agent",
                name: agent.name().to_string(),
                why: "registered twice (by two `#[pubsub_agent]` functions or calls)",
            });
        }
        pubsub_agents.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(App {
            actions,
            task_agents,
            pubsub_agents,
            app_data: self.app_data,
            builtins: self.builtins,
        })
    }

    /// Parses the process's arguments and runs the subcommand; the exit
    /// code is the `dagger` command's.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Parses `args` (the first is the program name) and runs the subcommand.
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        crate::main_with(self, args)
    }
}

/// What the subcommands run with: the binary's actions, task agents and
/// pub/sub agents, its shared state, and whether the built-ins are on.
pub struct App {
    /// The user's actions (annotated and hand-registered), without the built-ins.
    actions: ActionRegistry,
    task_agents: TaskAgentRegistry,
    pubsub_agents: Vec<Arc<dyn PubSubAgent>>,
    app_data: Option<AppData>,
    builtins: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("actions", &self.actions().names())
            .field("task_agents", &self.task_agents.names())
            .field("builtins", &self.builtins)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Every action: the built-ins (unless turned off) and the binary's own.
    pub fn actions(&self) -> ActionRegistry {
        let all = if self.builtins {
            builtin_registry()
        } else {
            ActionRegistry::new()
        };
        self.add_own_actions(&all);
        all
    }

    /// Every action, with `shell` recording its process groups for store
    /// `db` after killing those dead `dagger` processes left behind.
    pub(crate) fn actions_recording(&self, db: &str) -> ActionRegistry {
        let all = if self.builtins {
            recording_groups(db)
        } else {
            ActionRegistry::new()
        };
        self.add_own_actions(&all);
        all
    }

    fn add_own_actions(&self, into: &ActionRegistry) {
        for name in self.actions.names() {
            if let Some(action) = self.actions.get(&name) {
                into.register(action);
            }
        }
    }

    /// The task agents of the binary (the actions serve as task agents too
    /// in `worker`, under their own names).
    pub fn task_agents(&self) -> &TaskAgentRegistry {
        &self.task_agents
    }

    /// The pub/sub agents of the binary, sorted by name.
    pub fn pubsub_agents(&self) -> &[Arc<dyn PubSubAgent>] {
        &self.pubsub_agents
    }

    /// The shared state given to [`Cli::app_data`].
    pub fn app_data(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        self.app_data.clone()
    }

    /// An executor over `registry` and `stores` that hands the app data to
    /// the actions.
    pub(crate) async fn executor(
        &self,
        config: Option<DagConfig>,
        registry: ActionRegistry,
        stores: dagger_core::Stores,
    ) -> Result<DagExecutor, DagError> {
        let executor = DagExecutor::new(config, registry, stores).await?;
        Ok(match &self.app_data {
            Some(data) => executor.with_shared_app_data(data.clone()),
            None => executor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagger_core::BoxError;
    use dagger_dag_flow::{NodeAction, NodeCtx, NodeOutput};
    use dagger_task_core::FnAgent;

    /// An action with any name.
    struct Named(&'static str);

    #[async_trait::async_trait]
    impl NodeAction for Named {
        fn name(&self) -> &str {
            self.0
        }
        async fn execute(&self, _: &NodeCtx) -> Result<NodeOutput, BoxError> {
            Ok(NodeOutput::success(serde_json::json!({})))
        }
    }

    fn registry(names: &[&'static str]) -> ActionRegistry {
        let r = ActionRegistry::new();
        for name in names {
            r.register(Arc::new(Named(name)));
        }
        r
    }

    #[test]
    fn a_user_action_named_like_a_builtin_is_an_error_naming_it() {
        let err = Cli::new()
            .actions(registry(&["mine", "shell"]))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, CliError::Duplicate { kind: "action", name, .. } if name == "shell"),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("action `shell`: a built-in"));
    }

    #[test]
    fn without_builtins_hides_them_and_frees_their_names() {
        let app = Cli::new()
            .without_builtins()
            .actions(registry(&["shell", "mine"]))
            .build()
            .unwrap();
        assert_eq!(app.actions().names(), ["mine", "shell"]);
        let app = Cli::new().without_builtins().build().unwrap();
        assert!(!app.actions().contains("shell"));
        assert!(!app.actions_recording("sqlite::memory:").contains("shell"));
        let app = Cli::new().actions(registry(&["mine"])).build().unwrap();
        assert_eq!(
            app.actions().names(),
            ["echo", "fail", "mine", "shell", "sleep"]
        );
    }

    #[test]
    fn the_same_name_in_two_registries_is_an_error() {
        let err = Cli::new()
            .actions(registry(&["a"]))
            .actions(registry(&["a"]))
            .build()
            .unwrap_err();
        assert!(matches!(err, CliError::Duplicate { name, .. } if name == "a"));
        let agents = TaskAgentRegistry::new();
        agents
            .register_agent(Arc::new(FnAgent::new("sleep", |_, _| async {
                Ok(dagger_task_core::TaskOutcome::Completed(
                    serde_json::Value::Null,
                ))
            })))
            .unwrap();
        let err = Cli::new().agents(agents.clone()).build().unwrap_err();
        assert!(
            matches!(&err, CliError::Duplicate { kind: "task agent", name, .. } if name == "sleep")
        );
        let app = Cli::new()
            .without_builtins()
            .agents(agents)
            .build()
            .unwrap();
        assert_eq!(app.task_agents().names(), ["sleep"]);
    }

    #[tokio::test]
    async fn app_data_reaches_the_executor() {
        let app = Cli::new().app_data(7_u32).build().unwrap();
        let executor = app
            .executor(None, app.actions(), dagger_core::Stores::memory())
            .await
            .unwrap();
        let data = executor.app_data().unwrap();
        assert_eq!(data.downcast_ref::<u32>(), Some(&7));
    }
}

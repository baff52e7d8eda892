use dagger::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The seed's stateful agent.
pub struct StatefulAgent {
    state: Arc<RwLock<HashMap<String, Value>>>,
}

#[task_agent(
    name = "stateful_processor",
    description = "Agent that maintains state between executions"
)]
impl StatefulAgent {
    async fn execute(&self, input: Value, task_id: &str, job_id: &str) -> Result<Value, String> {
        let _ = job_id;
        let mut state = self.state.write().map_err(|e| e.to_string())?;
        state.insert(task_id.to_string(), input.clone());
        Ok(Value::from(state.len()))
    }

    /// Other methods stay as written.
    pub fn new() -> Self {
        Self { state: Arc::default() }
    }
}

pub struct WithManager;

#[task_agent(name = "with_manager")]
impl WithManager {
    async fn execute(
        &self,
        input: Value,
        task_id: &str,
        job_id: &str,
        task_manager: &TaskManager,
    ) -> Result<Value, String> {
        let _ = (task_id, job_id, task_manager);
        Ok(input)
    }
}

pub struct Generic<T>(T);

#[task_agent(name = "generic")]
impl<T: Send + Sync + 'static> Generic<T> {
    async fn execute(&self, input: Value, ctx: &TaskContext) -> Result<Value, BoxError> {
        let _ = (&self.0, ctx);
        Ok(input)
    }
}

fn main() {
    let registry = TaskAgentRegistry::new();
    registry.register_agent(Arc::new(StatefulAgent::new())).unwrap();
    registry.register_agent(Arc::new(WithManager)).unwrap();
    registry.register_agent(Arc::new(Generic(1u8))).unwrap();
}

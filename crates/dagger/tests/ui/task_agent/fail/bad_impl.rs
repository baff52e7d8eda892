use dagger::prelude::*;
use serde_json::Value;

pub struct NoExecute;

#[task_agent(name = "no_execute")]
impl NoExecute {
    pub async fn run(&self, input: Value) -> Result<Value, String> {
        Ok(input)
    }
}

pub struct NotAsync;

#[task_agent(name = "not_async")]
impl NotAsync {
    fn execute(self, input: Value, task_id: &str, job_id: &str) -> Result<Value, String> {
        let _ = (task_id, job_id);
        Ok(input)
    }
}

pub struct ForTrait;

#[task_agent(name = "for_trait")]
impl Clone for ForTrait {
    fn clone(&self) -> Self {
        ForTrait
    }
}

fn main() {}

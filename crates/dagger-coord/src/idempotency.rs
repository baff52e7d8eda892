//! Idempotent starts: a run recorded under an idempotency key of its
//! workflow, atomically on the store ([`RunStore::create_keyed_run`]), so a
//! second start with the key, from this process or another, finds the first
//! run instead of starting one. [`KeyPolicy`] says what a later start does.

use crate::error::CoordError;
use dagger_core::store::{ControlRequest, KeyedCreate, RunRecord, RunStore};
use dagger_core::{RunId, now_millis};
use serde::{Deserialize, Serialize};

/// What a start under an idempotency key that already names a run does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPolicy {
    /// The key names one run for good: every later start answers with it
    /// ([`CoordError::AlreadyStarted`]), finished or not.
    #[default]
    Once,
    /// A singleton: while the run the key names is unfinished, a start
    /// answers with it; once it finished (or its process died: its lease
    /// lapsed), a start records a new run under the key.
    Skip,
    /// A singleton: a start asks the unfinished run the key names to cancel
    /// (a control request, as `dagger cancel` sends) and records a new run
    /// under the key at once.
    CancelOther,
}

impl KeyPolicy {
    /// The policy named `name` (`once`, `skip`, `cancel_other`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "once" => Some(Self::Once),
            "skip" => Some(Self::Skip),
            "cancel_other" => Some(Self::CancelOther),
            _ => None,
        }
    }
}

/// How many times a start re-binds a key that other starts keep taking.
const ATTEMPTS: usize = 8;

/// Records `record` under `key` following `policy`: `Ok` when it was
/// recorded, [`CoordError::AlreadyStarted`] naming the run the key names
/// when the policy answers with that run.
pub(crate) async fn create_keyed(
    runs: &dyn RunStore,
    record: RunRecord,
    key: &str,
    policy: KeyPolicy,
) -> Result<(), CoordError> {
    let mut replace: Option<RunId> = None;
    let mut holder = None;
    for _ in 0..ATTEMPTS {
        let run_id = match runs
            .create_keyed_run(record.clone(), key, replace.as_ref())
            .await?
        {
            KeyedCreate::Created => return Ok(()),
            KeyedCreate::Existing(run_id) => run_id,
        };
        if policy == KeyPolicy::Once {
            return Err(already_started(key, &run_id));
        }
        let running = runs
            .get_run(&run_id)
            .await?
            .is_some_and(|r| !r.status.is_terminal() && r.orphaned_since(now_millis()).is_none());
        if running {
            if policy == KeyPolicy::Skip {
                return Err(already_started(key, &run_id));
            }
            let reason = format!(
                "replaced by run `{}` (idempotency key `{key}`, cancel_other)",
                record.run_id
            );
            runs.push_control(&run_id, ControlRequest::Cancel { reason })
                .await?;
        }
        holder = Some(run_id.clone());
        replace = Some(run_id);
    }
    let run_id = holder.unwrap_or_else(|| record.run_id.clone());
    Err(already_started(key, &run_id))
}

fn already_started(key: &str, run_id: &RunId) -> CoordError {
    CoordError::AlreadyStarted {
        key: key.to_string(),
        run_id: run_id.to_string(),
    }
}

//! Status enums of nodes, runs, tasks and jobs. The legal transitions of each
//! are encoded once, in `can_transition_to`, and every state change in Dagger
//! goes through `transition`.

use crate::error::StatusError;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! display_as_debug_name {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

/// The state of one node of a DAG Flow run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeStatus {
    /// Waiting for dependencies.
    Pending,
    /// Every dependency completed; waiting for a slot.
    Ready,
    /// An attempt is executing.
    Running,
    /// An attempt failed; waiting to retry.
    Retrying,
    /// Its branch is paused.
    Paused,
    /// Waiting for a human's approval or input.
    WaitingForHuman,
    /// A durable timer (`sleep`, `wait_until`) or a signal (`wait_for`):
    /// waiting for a time or an event, holding no execution slot.
    Waiting,
    /// Finished successfully.
    Completed,
    /// Finished with an error after its last attempt.
    Failed,
    /// Not run (a dependency failed, a branch was not selected, nodes were skipped).
    Skipped,
    /// Stopped by a cancel.
    Cancelled,
}

impl NodeStatus {
    /// The name as written in reports and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Ready => "Ready",
            Self::Running => "Running",
            Self::Retrying => "Retrying",
            Self::Paused => "Paused",
            Self::WaitingForHuman => "WaitingForHuman",
            Self::Waiting => "Waiting",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Parses the name written by [`NodeStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Every status.
    pub const ALL: [Self; 11] = [
        Self::Pending,
        Self::Ready,
        Self::Running,
        Self::Retrying,
        Self::Paused,
        Self::WaitingForHuman,
        Self::Waiting,
        Self::Completed,
        Self::Failed,
        Self::Skipped,
        Self::Cancelled,
    ];

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }

    /// Whether `self -> to` is legal.
    pub fn can_transition_to(self, to: Self) -> bool {
        use NodeStatus::*;
        matches!(
            (self, to),
            // A node can fail before running (bad fan-out list, human rejection).
            (Pending, Ready | Skipped | Cancelled | Paused | Failed)
                | (Ready, Running | Skipped | Cancelled | Paused | WaitingForHuman | Waiting | Completed | Failed)
                // Running -> Pending: an attempt interrupted by a pause runs again on resume.
                | (Running, Completed | Failed | Retrying | Cancelled | WaitingForHuman | Ready | Pending)
                | (Retrying, Running | Cancelled | Failed | Paused | Skipped)
                | (Paused, Ready | Pending | Cancelled | Skipped)
                | (WaitingForHuman, Ready | Completed | Failed | Cancelled | Skipped)
                // A timer or signal wait ends in the node's end (or a skip).
                | (Waiting, Completed | Failed | Cancelled | Skipped)
        )
    }

    /// `to` if the transition is legal, else a [`StatusError`] naming the node.
    pub fn transition(self, id: &str, to: Self) -> Result<Self, StatusError> {
        check(
            self.can_transition_to(to),
            "node",
            id,
            self.as_str(),
            to.as_str(),
        )
        .map(|()| to)
    }
}
display_as_debug_name!(NodeStatus);

/// The state of a DAG Flow run, derived from its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    /// Created, not started.
    Pending,
    /// Executing.
    Running,
    /// Stopped with state kept; can be resumed.
    Paused,
    /// Waiting for a human; can be resumed once input arrives.
    WaitingForHuman,
    /// Every node completed (or was skipped by a branch choice).
    Completed,
    /// A node failed, a timeout or a budget ended the run.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl RunStatus {
    /// The name as written in reports and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Paused => "Paused",
            Self::WaitingForHuman => "WaitingForHuman",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Every status.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Running,
        Self::Paused,
        Self::WaitingForHuman,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Parses the name written by [`RunStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Whether `self -> to` is legal.
    pub fn can_transition_to(self, to: Self) -> bool {
        use RunStatus::*;
        matches!(
            (self, to),
            (Pending, Running | Cancelled | Failed)
                | (
                    Running,
                    Paused | WaitingForHuman | Completed | Failed | Cancelled
                )
                | (Paused | WaitingForHuman, Running | Cancelled | Failed)
                | (Running, Running)
        )
    }

    /// `to` if the transition is legal, else a [`StatusError`] naming the run.
    pub fn transition(self, id: &str, to: Self) -> Result<Self, StatusError> {
        check(
            self.can_transition_to(to),
            "run",
            id,
            self.as_str(),
            to.as_str(),
        )
        .map(|()| to)
    }
}
display_as_debug_name!(RunStatus);

/// The state of a Task Agent task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskStatus {
    /// Created; dependencies not yet checked or not complete.
    Pending,
    /// Every dependency is done; may be claimed.
    Ready,
    /// Waiting on dependencies the agent created while running.
    Blocked,
    /// Claimed by a worker under a lease.
    InProgress,
    /// Finished successfully.
    Completed,
    /// Finished with an error after its retries, or a dependency failed.
    Failed,
    /// Output accepted by a reviewer.
    Accepted,
    /// Output rejected by a reviewer.
    Rejected,
    /// Cancelled with its job.
    Cancelled,
}

impl TaskStatus {
    /// The name as written in reports and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Ready => "Ready",
            Self::Blocked => "Blocked",
            Self::InProgress => "InProgress",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Accepted => "Accepted",
            Self::Rejected => "Rejected",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Every status.
    pub const ALL: [Self; 9] = [
        Self::Pending,
        Self::Ready,
        Self::Blocked,
        Self::InProgress,
        Self::Completed,
        Self::Failed,
        Self::Accepted,
        Self::Rejected,
        Self::Cancelled,
    ];

    /// Parses the name written by [`TaskStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// No further transition is possible (a Completed task may still be reviewed).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Failed | Self::Accepted | Self::Rejected | Self::Cancelled
        )
    }

    /// The task's output may be used by dependents.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Completed | Self::Accepted)
    }

    /// Whether `self -> to` is legal.
    pub fn can_transition_to(self, to: Self) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Pending, Ready | Blocked | Failed | Cancelled)
                | (Ready, InProgress | Blocked | Cancelled | Failed)
                | (Blocked, Ready | Failed | Cancelled)
                | (InProgress, Completed | Failed | Blocked | Ready | Cancelled)
                | (Completed, Accepted | Rejected)
                | (Rejected, Ready)
        )
    }

    /// `to` if the transition is legal, else a [`StatusError`] naming the task.
    pub fn transition(self, id: &str, to: Self) -> Result<Self, StatusError> {
        check(
            self.can_transition_to(to),
            "task",
            id,
            self.as_str(),
            to.as_str(),
        )
        .map(|()| to)
    }
}
display_as_debug_name!(TaskStatus);

/// The state of a Task Agent job, as its handle reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    /// Tasks are still pending or running.
    Running,
    /// Every task reached a final state; `true` when none failed.
    Completed(bool),
    /// The job was cancelled.
    Cancelled,
}

impl JobStatus {
    /// The name as written in the store (`Running`, `Succeeded`, `Failed`, `Cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Completed(true) => "Succeeded",
            Self::Completed(false) => "Failed",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Parses the name written by [`JobStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Running" => Some(Self::Running),
            "Succeeded" => Some(Self::Completed(true)),
            "Failed" => Some(Self::Completed(false)),
            "Cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Running)
    }

    /// Whether `self -> to` is legal: only a running job may end.
    pub fn can_transition_to(self, to: Self) -> bool {
        matches!(self, Self::Running) && to != Self::Running
    }

    /// `to` if the transition is legal, else a [`StatusError`] naming the job.
    pub fn transition(self, id: &str, to: Self) -> Result<Self, StatusError> {
        check(
            self.can_transition_to(to),
            "job",
            id,
            self.as_str(),
            to.as_str(),
        )
        .map(|()| to)
    }
}
display_as_debug_name!(JobStatus);

fn check(
    ok: bool,
    entity: &'static str,
    id: &str,
    from: &str,
    to: &str,
) -> Result<(), StatusError> {
    if ok {
        Ok(())
    } else {
        Err(StatusError {
            entity,
            id: id.to_string(),
            from: from.to_string(),
            to: to.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_node_states_have_no_exit() {
        for from in NodeStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in NodeStatus::ALL {
                assert!(
                    !from.can_transition_to(to),
                    "{from} -> {to} must be illegal"
                );
            }
        }
    }

    #[test]
    fn node_happy_path_is_legal_and_shortcuts_are_not() {
        let s = NodeStatus::Pending;
        let s = s.transition("n", NodeStatus::Ready).unwrap();
        let s = s.transition("n", NodeStatus::Running).unwrap();
        let s = s.transition("n", NodeStatus::Retrying).unwrap();
        let s = s.transition("n", NodeStatus::Running).unwrap();
        assert_eq!(
            s.transition("n", NodeStatus::Completed).unwrap(),
            NodeStatus::Completed
        );
        let err = NodeStatus::Pending
            .transition("load", NodeStatus::Completed)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "illegal node transition for `load`: Pending -> Completed"
        );
    }

    #[test]
    fn run_terminal_states_are_final() {
        for from in RunStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in RunStatus::ALL {
                assert!(!from.can_transition_to(to));
            }
        }
        assert!(RunStatus::Paused.can_transition_to(RunStatus::Running));
    }

    #[test]
    fn task_lifecycle() {
        use TaskStatus::*;
        assert!(Ready.can_transition_to(InProgress));
        assert!(
            InProgress.can_transition_to(Blocked),
            "dynamic dependencies block a running task"
        );
        assert!(Blocked.can_transition_to(Ready));
        assert!(Completed.can_transition_to(Accepted));
        assert!(!Completed.can_transition_to(InProgress));
        assert!(!Pending.can_transition_to(Completed));
        let err = Failed.transition("t9", Ready).unwrap_err();
        assert_eq!(err.entity, "task");
        assert_eq!(err.id, "t9");
    }

    #[test]
    fn names_round_trip() {
        for s in NodeStatus::ALL {
            assert_eq!(NodeStatus::parse(s.as_str()), Some(s));
        }
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        for s in [
            JobStatus::Running,
            JobStatus::Completed(true),
            JobStatus::Completed(false),
            JobStatus::Cancelled,
        ] {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn jobs_end_once() {
        assert!(JobStatus::Running.can_transition_to(JobStatus::Cancelled));
        assert!(!JobStatus::Completed(true).can_transition_to(JobStatus::Cancelled));
        assert!(!JobStatus::Running.can_transition_to(JobStatus::Running));
    }
}

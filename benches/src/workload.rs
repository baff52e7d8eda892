//! The workloads the harness runs and the engines it runs them on.

use crate::engines::{self, Timing};
use crate::shape::Shape;
use dagger_core::store::Durability;
use std::sync::Arc;

/// An engine the harness can run a shape on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Dagger in memory (`Stores::memory()`).
    Dagger,
    /// Dagger recording every state change in SQLite, `Durability::Batched`.
    DaggerSqliteBatched,
    /// Dagger recording every state change in SQLite, `Durability::Sync`.
    DaggerSqliteSync,
    /// `dag-executor` 0.1.0, in memory, concurrency 1024.
    DagExecutor,
    /// `dagrs` 0.9.0.
    Dagrs,
    /// `dagx` 0.3.1.
    Dagx,
    /// Atomic in-degree counters and `tokio::spawn`.
    Floor,
}

impl Engine {
    /// The engine's name in `RESULT` lines.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Dagger => "dagger",
            Engine::DaggerSqliteBatched => "dagger-sqlite-batched",
            Engine::DaggerSqliteSync => "dagger-sqlite-sync",
            Engine::DagExecutor => "dag-executor",
            Engine::Dagrs => "dagrs",
            Engine::Dagx => "dagx",
            Engine::Floor => "floor",
        }
    }

    /// The engine named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Engine::Dagger,
            Engine::DaggerSqliteBatched,
            Engine::DaggerSqliteSync,
            Engine::DagExecutor,
            Engine::Dagrs,
            Engine::Dagx,
            Engine::Floor,
        ]
        .into_iter()
        .find(|e| e.name() == name)
    }

    /// Builds and runs `shape` once on the current runtime.
    pub async fn build_and_run(self, shape: Arc<Shape>) -> Timing {
        match self {
            Engine::Dagger => engines::dagger::build_and_run(&shape).await,
            Engine::DaggerSqliteBatched => {
                engines::dagger::build_and_run_sqlite(&shape, Durability::Batched).await
            }
            Engine::DaggerSqliteSync => {
                engines::dagger::build_and_run_sqlite(&shape, Durability::Sync).await
            }
            Engine::DagExecutor => engines::dag_executor::build_and_run(&shape).await,
            Engine::Dagrs => engines::dagrs::build_and_run(&shape).await,
            Engine::Dagx => engines::dagx::build_and_run(&shape).await,
            Engine::Floor => engines::floor::build_and_run(&shape).await,
        }
    }
}

/// A DAG Flow workload of `WORKLOADS.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dag {
    /// layered(100, 100, 2).
    D1,
    /// chain(10,000).
    D2,
    /// layered(1000, 100, 2).
    D3,
    /// fan(10,000).
    D4Fan,
    /// dense(32, 32).
    D4Dense,
    /// D1 persisted to SQLite.
    D6,
}

impl Dag {
    /// The workload's id in `RESULT` lines.
    pub fn id(self) -> &'static str {
        match self {
            Dag::D1 => "D1",
            Dag::D2 => "D2",
            Dag::D3 => "D3",
            Dag::D4Fan => "D4-fan",
            Dag::D4Dense => "D4-dense",
            Dag::D6 => "D6",
        }
    }

    /// The workload with id `id`.
    pub fn parse(id: &str) -> Option<Self> {
        Self::all().into_iter().find(|d| d.id() == id)
    }

    /// Every DAG workload, in report order.
    pub fn all() -> [Dag; 6] {
        [Dag::D1, Dag::D2, Dag::D3, Dag::D4Fan, Dag::D4Dense, Dag::D6]
    }

    /// The workload's exact shape.
    pub fn shape(self) -> Shape {
        match self {
            Dag::D1 | Dag::D6 => Shape::layered(100, 100, 2),
            Dag::D2 => Shape::chain(10_000),
            Dag::D3 => Shape::layered(1000, 100, 2),
            Dag::D4Fan => Shape::fan(10_000),
            Dag::D4Dense => Shape::dense(32, 32),
        }
    }

    /// The engines compared on this workload; the first is the reference of the ratios.
    pub fn engines(self) -> &'static [Engine] {
        match self {
            Dag::D6 => &[
                Engine::Dagger,
                Engine::DaggerSqliteBatched,
                Engine::DaggerSqliteSync,
            ],
            _ => &[
                Engine::Dagger,
                Engine::DagExecutor,
                Engine::Dagrs,
                Engine::Dagx,
                Engine::Floor,
            ],
        }
    }
}

/// The median of `xs` (the mean of the middle two for an even count); 0 for none.
pub fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn every_engine_and_workload_name_parses_back() {
        for d in Dag::all() {
            assert_eq!(Dag::parse(d.id()), Some(d));
            for &e in d.engines() {
                assert_eq!(Engine::parse(e.name()), Some(e));
            }
        }
    }

    #[test]
    fn every_paradigm_case_has_a_distinct_id_that_parses_back() {
        let cases: Vec<Paradigm> = ["Q1", "P1", "P2"]
            .into_iter()
            .flat_map(Paradigm::cases)
            .collect();
        assert_eq!(cases.len(), 9);
        for c in cases {
            assert_eq!(Paradigm::parse(&c.id()), Some(c));
        }
    }

    #[test]
    fn every_engine_runs_a_small_layered_graph() {
        let rt = crate::runtime();
        let shape = Arc::new(Shape::layered(5, 4, 2));
        for e in [
            Engine::Dagger,
            Engine::DaggerSqliteBatched,
            Engine::DagExecutor,
            Engine::Dagrs,
            Engine::Dagx,
            Engine::Floor,
        ] {
            // Each engine asserts that every node completed.
            crate::on_workers(&rt, e.build_and_run(shape.clone()));
        }
    }
}

/// A Task Agent or Pub/Sub workload (no peers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paradigm {
    /// Q1: [`Q1_TASKS`] no-op tasks in one job, this many workers.
    Q1 {
        /// Task managers, each with its own store handle, sharing the job.
        workers: usize,
    },
    /// P1: one publisher, one subscriber, payloads of `bytes` bytes.
    P1 {
        /// Payload size in bytes.
        bytes: usize,
    },
    /// P2: one publisher, `subscribers` subscribers, 16-byte payloads.
    P2 {
        /// Subscribed agents.
        subscribers: usize,
    },
}

/// Tasks per Q1 run, as WORKLOADS.md gives.
pub const Q1_TASKS: usize = 100_000;
/// Messages per P1 run. WORKLOADS.md says 10M; the harness uses 1M per run
/// so that `compare --workload all` stays under 10 minutes (the rate, not
/// the count, is the figure).
pub const P1_MESSAGES: usize = 1_000_000;
/// Messages per P2 run (each delivered to every subscriber).
pub const P2_MESSAGES: usize = 200_000;

impl Paradigm {
    /// The cases of workload `id` (`Q1`, `P1` or `P2`).
    pub fn cases(id: &str) -> Vec<Paradigm> {
        match id {
            "Q1" => [1, 2, 4]
                .into_iter()
                .map(|workers| Paradigm::Q1 { workers })
                .collect(),
            "P1" => [16, 1024]
                .into_iter()
                .map(|bytes| Paradigm::P1 { bytes })
                .collect(),
            "P2" => [1, 4, 16, 64]
                .into_iter()
                .map(|subscribers| Paradigm::P2 { subscribers })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The case's id in `RESULT` lines, e.g. `Q1-w2`, `P1-1024B`, `P2-s16`.
    pub fn id(self) -> String {
        match self {
            Paradigm::Q1 { workers } => format!("Q1-w{workers}"),
            Paradigm::P1 { bytes } => format!("P1-{bytes}B"),
            Paradigm::P2 { subscribers } => format!("P2-s{subscribers}"),
        }
    }

    /// The case with id `id`.
    pub fn parse(id: &str) -> Option<Self> {
        ["Q1", "P1", "P2"]
            .into_iter()
            .flat_map(Self::cases)
            .find(|c| c.id() == id)
    }

    /// Units of work per run: tasks, messages, or deliveries (messages × subscribers).
    pub fn units(self) -> usize {
        match self {
            Paradigm::Q1 { .. } => Q1_TASKS,
            Paradigm::P1 { .. } => P1_MESSAGES,
            Paradigm::P2 { subscribers } => P2_MESSAGES * subscribers,
        }
    }

    /// What a unit is, for the rate line.
    pub fn unit_name(self) -> &'static str {
        match self {
            Paradigm::Q1 { .. } => "tasks_per_s",
            Paradigm::P1 { .. } => "messages_per_s",
            Paradigm::P2 { .. } => "deliveries_per_s",
        }
    }

    /// Runs the case once on the current runtime.
    pub async fn run(self) -> Timing {
        match self {
            Paradigm::Q1 { workers } => {
                engines::paradigms::q1(Q1_TASKS, workers, std::time::Duration::ZERO).await
            }
            Paradigm::P1 { bytes } => engines::paradigms::pubsub(P1_MESSAGES, bytes, 1).await,
            Paradigm::P2 { subscribers } => {
                engines::paradigms::pubsub(P2_MESSAGES, 16, subscribers).await
            }
        }
    }
}

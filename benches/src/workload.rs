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
    fn every_engine_runs_a_small_layered_graph() {
        let rt = crate::runtime();
        let shape = Arc::new(Shape::layered(5, 4, 2));
        for e in [
            Engine::Dagger,
            Engine::DaggerSqliteBatched,
            Engine::DagExecutor,
            Engine::Dagrs,
            Engine::Floor,
        ] {
            // Each engine asserts that every node completed.
            crate::on_workers(&rt, e.build_and_run(shape.clone()));
        }
    }
}

//! `dagx` (crates.io, default features off): one task per node, each
//! depending on the node's dependencies in order. Each task reads its first
//! dependency's output (a `u64`, handed over by dagx's own channels) and
//! returns x + 1; a root returns 1.
//!
//! dagx types a task's inputs as a tuple of at most 8 handles, so a node
//! with more dependencies (D4: the fan's sink, every dense node) depends on
//! a tree of gather tasks of up to 8 inputs each, which pass their first
//! input on. A tree is built once per distinct dependency list (dense(32, 32)
//! shares one per layer), as a dagx user would; its tasks count in dagx's time.

use super::Timing;
use crate::shape::Shape;
use dagx::{DagRunner, Task, TaskHandle, task};
use std::collections::HashMap;
use std::time::Instant;

/// Most inputs a dagx task can take (its dependency tuples stop at 8).
pub const MAX_INPUTS: usize = 8;

/// A node without dependencies: returns its constant (1).
struct Root(u64);

#[task]
impl Root {
    async fn run(&self) -> u64 {
        self.0
    }
}

/// Declares a task of `n` inputs that returns its first input plus its
/// constant (1 for a node, 0 for a gather task).
macro_rules! arity {
    ($name:ident, $($rest:ident),*) => {
        struct $name(u64);

        #[task]
        impl $name {
            // The tuple of inputs is dagx's way of typing dependencies.
            #[allow(clippy::too_many_arguments)]
            async fn run(&self, first: &u64, $($rest: &u64),*) -> u64 {
                first + self.0
            }
        }
    };
}

struct In1(u64);

#[task]
impl In1 {
    async fn run(&self, first: &u64) -> u64 {
        first + self.0
    }
}

arity!(In2, _b);
arity!(In3, _b, _c);
arity!(In4, _b, _c, _d);
arity!(In5, _b, _c, _d, _e);
arity!(In6, _b, _c, _d, _e, _f);
arity!(In7, _b, _c, _d, _e, _f, _g);
arity!(In8, _b, _c, _d, _e, _f, _g, _h);

/// Adds a task reading `deps` (at most [`MAX_INPUTS`]) that returns the
/// first input plus `add`.
fn add_task(dag: &DagRunner, deps: &[TaskHandle<u64>], add: u64) -> TaskHandle<u64> {
    match deps {
        [] => dag.add_task(Root(add)).into(),
        [a] => dag.add_task(In1(add)).depends_on(a),
        [a, b] => dag.add_task(In2(add)).depends_on((a, b)),
        [a, b, c] => dag.add_task(In3(add)).depends_on((a, b, c)),
        [a, b, c, d] => dag.add_task(In4(add)).depends_on((a, b, c, d)),
        [a, b, c, d, e] => dag.add_task(In5(add)).depends_on((a, b, c, d, e)),
        [a, b, c, d, e, f] => dag.add_task(In6(add)).depends_on((a, b, c, d, e, f)),
        [a, b, c, d, e, f, g] => dag.add_task(In7(add)).depends_on((a, b, c, d, e, f, g)),
        [a, b, c, d, e, f, g, h] => dag.add_task(In8(add)).depends_on((a, b, c, d, e, f, g, h)),
        _ => unreachable!("callers pass at most MAX_INPUTS dependencies"),
    }
}

/// Reduces `deps` to at most [`MAX_INPUTS`] handles through gather tasks
/// (each passes its first input on, so the first handle still yields the
/// first dependency's output).
fn narrow(dag: &DagRunner, mut deps: Vec<TaskHandle<u64>>) -> Vec<TaskHandle<u64>> {
    while deps.len() > MAX_INPUTS {
        deps = deps
            .chunks(MAX_INPUTS)
            .map(|chunk| add_task(dag, chunk, 0))
            .collect();
    }
    deps
}

/// A shape built as a dagx DAG, with the task whose output `run` checks.
pub struct Graph {
    dag: DagRunner,
    last: TaskHandle<u64>,
}

/// Builds `shape` as a dagx DAG.
pub fn build(shape: &Shape) -> Graph {
    let dag = DagRunner::new();
    let mut handles: Vec<TaskHandle<u64>> = Vec::with_capacity(shape.len());
    let mut trees: HashMap<&[u32], Vec<TaskHandle<u64>>> = HashMap::new();
    for deps in &shape.deps {
        let inputs = if deps.len() <= MAX_INPUTS {
            deps.iter().map(|&d| handles[d as usize]).collect()
        } else {
            trees
                .entry(deps.as_slice())
                .or_insert_with(|| {
                    narrow(&dag, deps.iter().map(|&d| handles[d as usize]).collect())
                })
                .clone()
        };
        handles.push(add_task(&dag, &inputs, 1));
    }
    let last = *handles.last().expect("a shape has nodes");
    Graph { dag, last }
}

/// The output the last node of `shape` must produce: 1 more than its
/// first dependency's, 1 for a root.
pub fn expected_last(shape: &Shape) -> u64 {
    let mut value = Vec::with_capacity(shape.len());
    for deps in &shape.deps {
        let x = deps.first().map_or(0, |&d| value[d as usize]);
        value.push(x + 1);
    }
    value.last().copied().unwrap_or(0)
}

/// Runs `graph` to completion on the current tokio runtime, asserting that
/// the last node produced `expected`.
pub async fn run(graph: Graph, expected: u64) {
    graph
        .dag
        .run(|fut| {
            tokio::spawn(fut);
        })
        .await
        .expect("dagx run succeeds");
    let last: u64 = graph
        .dag
        .get(graph.last)
        .expect("dagx kept the last output");
    assert_eq!(last, expected, "dagx computed the wrong value");
}

/// Builds and runs `shape` once.
pub async fn build_and_run(shape: &Shape) -> Timing {
    let expected = expected_last(shape);
    let t0 = Instant::now();
    let graph = build(shape);
    let build = t0.elapsed();
    let t1 = Instant::now();
    run(graph, expected).await;
    Timing {
        build,
        run: t1.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_dependency_lists_go_through_gather_tasks_and_keep_the_first_input() {
        let rt = crate::runtime();
        for shape in [Shape::fan(100), Shape::dense(3, 20), Shape::chain(5)] {
            let shape = std::sync::Arc::new(shape);
            let expected = expected_last(&shape);
            // `run` asserts the last node's output.
            crate::on_workers(&rt, async move { run(build(&shape), expected).await });
        }
        assert_eq!(expected_last(&Shape::fan(100)), 3);
        assert_eq!(expected_last(&Shape::chain(5)), 5);
    }
}

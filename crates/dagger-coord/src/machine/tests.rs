//! Unit tests of the run machine: events in, effects and states out. No
//! runtime, no clock: a [`Sim`] feeds events (in a seeded order where the
//! order is what is tested) and reads the effects back.

use super::graph::{ActionRef, DefHandle, NodeState, RunGraph};
use super::msg::{Control, Effect, Event, Failure, Outcome, Outputs, Timer};
use super::{Machine, Params};
use crate::event::ExecutionEvent;
use dagger_core::{ErrorClass, NodeStatus, RunStatus};
use dagger_dag_flow::{
    ActionRegistry, DagConfig, NodeAction, NodeCtx, NodeDef, NodeOutput, OnFailure, RetryStrategy,
    WorkflowDef,
};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

struct Noop;

#[async_trait::async_trait]
impl NodeAction for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput, dagger_core::BoxError> {
        Ok(NodeOutput::success(Value::Null))
    }
}

/// Node outputs by node id, as the cache would hold them.
#[derive(Default)]
struct Data(RefCell<HashMap<String, Value>>);

impl Outputs for Data {
    fn get(&self, reference: &str) -> Option<Arc<Value>> {
        let (node, key) = reference.split_once('.')?;
        let map = self.0.borrow();
        map.get(node)?.get(key).cloned().map(Arc::new)
    }
    fn put(&self, node: &str, output: &Value) {
        self.0.borrow_mut().insert(node.to_string(), output.clone());
    }
}

/// A machine driven by hand.
struct Sim {
    m: Machine,
    data: Data,
    now: i64,
    /// Effects other than starts, in order.
    log: Vec<Effect>,
}

fn node(id: &str, deps: &[&str]) -> NodeDef {
    NodeDef {
        id: id.into(),
        action: "noop".into(),
        dependencies: deps.iter().map(|d| d.to_string()).collect(),
        ..Default::default()
    }
}

fn workflow(nodes: Vec<NodeDef>) -> WorkflowDef {
    serde_json::from_value(json!({ "name": "wf", "nodes": [] }))
        .map(|mut wf: WorkflowDef| {
            wf.nodes = nodes;
            wf
        })
        .expect("a workflow")
}

impl Sim {
    fn new(nodes: Vec<NodeDef>, config: DagConfig, hooks: bool) -> Self {
        let wf = Arc::new(workflow(nodes));
        let registry = ActionRegistry::new();
        registry.register(Arc::new(Noop));
        let action: Arc<dyn NodeAction> = Arc::new(Noop);
        let states = (0..wf.nodes.len())
            .map(|i| {
                NodeState::new(
                    Arc::from(wf.nodes[i].id.as_str()),
                    DefHandle::Static(wf.clone(), i as u32),
                    action.clone(),
                    false,
                )
            })
            .collect();
        let mut m = Machine::new(Params {
            graph: RunGraph::new(states, hooks, true),
            wf,
            added: Vec::new(),
            config,
            registry,
            failure_actions: HashMap::new(),
            restored_invocations: HashMap::new(),
            grace_ms: 1_000,
            seed: 7,
            consumed_signals: Default::default(),
        });
        m.start(0, false);
        let mut sim = Self {
            m,
            data: Data::default(),
            now: 0,
            log: Vec::new(),
        };
        sim.m.advance(0, &sim.data);
        sim
    }

    fn i(&self, id: &str) -> u32 {
        self.m.g.index[id]
    }

    fn status(&self, id: &str) -> NodeStatus {
        self.m.g.nodes[self.i(id) as usize].status
    }

    fn step(&mut self, event: Event) {
        self.now += 1;
        self.m.step(event, self.now, &self.data);
    }

    /// The attempts started since the last call, as (node id, invocation);
    /// other effects go to the log.
    fn starts(&mut self) -> Vec<(String, Option<u32>)> {
        let mut fx = Vec::new();
        self.m.drain(&mut fx);
        let mut out = Vec::new();
        for e in fx {
            match e {
                Effect::Start(s) => out.push((s.node_id.to_string(), s.invocation)),
                other => self.log.push(other),
            }
        }
        out
    }

    fn ok(&mut self, id: &str, inv: Option<u32>, output: Value) {
        if inv.is_none() {
            self.data.put(id, &output);
        }
        let node = self.i(id);
        self.step(Event::AttemptDone {
            node,
            invocation: inv,
            outcome: Outcome::Succeeded {
                output: Arc::new(NodeOutput::success(output)),
                cache_hit: false,
                deferred: None,
            },
        });
    }

    fn fail(&mut self, id: &str, message: &str) {
        let node = self.i(id);
        self.step(Event::AttemptDone {
            node,
            invocation: None,
            outcome: Outcome::Failed(Failure {
                class: ErrorClass::Error,
                message: message.into(),
            }),
        });
    }
}

fn ids(starts: &[(String, Option<u32>)]) -> Vec<&str> {
    starts.iter().map(|(id, _)| id.as_str()).collect()
}

#[test]
fn a_chain_starts_each_node_after_its_dependency() {
    let nodes = vec![node("a", &[]), node("b", &["a"]), node("c", &["b"])];
    let mut sim = Sim::new(nodes, DagConfig::default(), false);
    assert_eq!(ids(&sim.starts()), ["a"]);
    assert_eq!(sim.status("b"), NodeStatus::Pending);
    sim.ok("a", None, json!({}));
    assert_eq!(ids(&sim.starts()), ["b"]);
    sim.ok("b", None, json!({}));
    assert_eq!(ids(&sim.starts()), ["c"]);
    assert!(!sim.m.is_done());
    sim.ok("c", None, json!({}));
    assert!(sim.starts().is_empty());
    assert!(sim.m.is_done());
    assert_eq!(sim.m.end(), (RunStatus::Completed, None));
    assert_eq!(sim.m.g.nodes[2].duration(), Some(1));
}

#[test]
fn no_more_attempts_run_than_the_parallel_limit() {
    let nodes = (0..5).map(|k| node(&format!("n{k}"), &[])).collect();
    let config = DagConfig {
        max_parallel_nodes: 2,
        ..Default::default()
    };
    let mut sim = Sim::new(nodes, config, false);
    assert_eq!(ids(&sim.starts()), ["n0", "n1"]);
    sim.ok("n1", None, json!({}));
    assert_eq!(ids(&sim.starts()), ["n2"]);
    assert_eq!(sim.m.running(), 2);
}

#[test]
fn a_failure_skips_what_depends_on_it_and_fails_the_run() {
    let nodes = vec![node("a", &[]), node("b", &["a"]), node("c", &["b"])];
    let mut sim = Sim::new(nodes, DagConfig::default(), false);
    sim.starts();
    sim.fail("a", "boom");
    assert!(sim.starts().is_empty());
    assert_eq!(sim.status("a"), NodeStatus::Failed);
    assert_eq!(sim.status("b"), NodeStatus::Skipped);
    assert_eq!(sim.status("c"), NodeStatus::Skipped);
    // Every ended node is recorded.
    let recorded = sim
        .log
        .iter()
        .filter(|e| matches!(e, Effect::Record(_)))
        .count();
    assert_eq!(recorded, 3);
    assert!(sim.m.is_done());
    let (status, reason) = sim.m.end();
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(reason.as_deref(), Some("failed nodes: a"));
}

#[test]
fn a_retry_arms_a_timer_and_the_timer_starts_the_next_attempt() {
    let config = DagConfig {
        max_attempts: Some(3),
        retry_strategy: RetryStrategy::ExponentialMs {
            initial_delay_ms: 100,
            max_delay_ms: 30_000,
            multiplier: 2.0,
        },
        ..Default::default()
    };
    let mut sim = Sim::new(vec![node("a", &[])], config, false);
    sim.starts();
    sim.fail("a", "flaky");
    assert!(sim.starts().is_empty());
    assert_eq!(sim.status("a"), NodeStatus::Retrying);
    let a = sim.i("a");
    assert!(matches!(
        sim.log.last(),
        Some(Effect::Arm(Timer::Retry { node, invocation: None }, 100)) if *node == a
    ));
    assert!(!sim.m.is_done(), "a retry is pending");
    sim.step(Event::TimerFired(Timer::Retry {
        node: a,
        invocation: None,
    }));
    assert_eq!(ids(&sim.starts()), ["a"]);
    assert_eq!(sim.m.g.nodes[a as usize].attempts, 2);
    sim.ok("a", None, json!({}));
    assert_eq!(sim.m.end().0, RunStatus::Completed);
}

#[test]
fn a_false_condition_skips_the_node_without_starting_it() {
    let mut guarded = node("b", &["a"]);
    guarded.when = Some("a.go".into());
    let nodes = vec![node("a", &[]), guarded, node("c", &["b"])];
    let mut sim = Sim::new(nodes, DagConfig::default(), false);
    sim.starts();
    sim.ok("a", None, json!({ "go": false }));
    assert!(sim.starts().is_empty());
    assert_eq!(sim.status("b"), NodeStatus::Skipped);
    assert_eq!(sim.status("c"), NodeStatus::Skipped);
    assert_eq!(sim.m.end().0, RunStatus::Completed);
}

#[test]
fn an_approval_waits_until_a_human_approves() {
    let mut gated = node("a", &[]);
    gated.approval = Some("ship it?".into());
    let config = DagConfig {
        human_wait_minutes: Some(1),
        ..Default::default()
    };
    let mut sim = Sim::new(vec![gated], config, false);
    assert!(sim.starts().is_empty());
    assert_eq!(sim.status("a"), NodeStatus::WaitingForHuman);
    assert!(sim.m.only_waiting() && !sim.m.is_done());
    let a = sim.i("a");
    assert!(
        sim.log
            .iter()
            .any(|e| matches!(e, Effect::Arm(Timer::Human(n), 60_000) if *n == a))
    );
    sim.step(Event::Control(Control::Approve {
        node_id: "a".into(),
        input: Some(json!("yes")),
    }));
    assert_eq!(ids(&sim.starts()), ["a"]);
    let overrides = sim.m.g.nodes[a as usize].overrides().cloned();
    assert_eq!(
        overrides.and_then(|o| o.get("human_input").cloned()),
        Some(json!("yes"))
    );
    // The wait's timer fires late: it changes nothing.
    sim.step(Event::TimerFired(Timer::Human(a)));
    assert_eq!(sim.status("a"), NodeStatus::Running);
}

#[test]
fn a_cancel_stops_the_run_and_the_grace_period_drops_what_still_runs() {
    let nodes = vec![node("a", &[]), node("b", &["a"])];
    let mut sim = Sim::new(nodes, DagConfig::default(), false);
    sim.starts();
    sim.step(Event::Control(Control::Cancel(
        "run cancelled: enough".into(),
    )));
    sim.starts();
    assert!(matches!(sim.log[0], Effect::CancelRun));
    assert!(matches!(sim.log[1], Effect::Arm(Timer::Grace, 1_000)));
    assert!(!sim.m.is_done(), "a still runs");
    sim.step(Event::TimerFired(Timer::Grace));
    sim.starts();
    assert!(matches!(sim.log.last(), Some(Effect::Abort)));
    assert_eq!(sim.status("a"), NodeStatus::Cancelled);
    assert!(sim.m.is_done());
    // The dropped attempt's late report changes nothing.
    sim.ok("a", None, json!({}));
    assert_eq!(sim.status("a"), NodeStatus::Cancelled);
    let (status, reason) = sim.m.end();
    assert_eq!(status, RunStatus::Cancelled);
    assert_eq!(reason.as_deref(), Some("run cancelled: enough"));
    // What never started is cancelled with the run's reason.
    assert_eq!(sim.status("b"), NodeStatus::Cancelled);
}

#[test]
fn a_pause_lets_running_attempts_finish_and_starts_nothing() {
    let config = DagConfig {
        on_failure: OnFailure::Pause,
        ..Default::default()
    };
    let nodes = vec![node("a", &[]), node("b", &[]), node("c", &["b"])];
    let mut sim = Sim::new(nodes, config, false);
    assert_eq!(ids(&sim.starts()), ["a", "b"]);
    sim.fail("a", "boom");
    sim.starts();
    assert!(!sim.log.iter().any(|e| matches!(e, Effect::CancelRun)));
    sim.ok("b", None, json!({}));
    assert!(sim.starts().is_empty(), "c does not start in a paused run");
    assert!(sim.m.is_done());
    assert_eq!(sim.m.end().0, RunStatus::Paused);
    assert_eq!(sim.status("c"), NodeStatus::Ready);
}

#[test]
fn a_fan_out_starts_one_invocation_per_item_and_completes_with_their_results() {
    let mut fan = node("f", &["src"]);
    fan.map_over = Some("src.items".into());
    let nodes = vec![node("src", &[]), fan, node("after", &["f"])];
    let mut sim = Sim::new(nodes, DagConfig::default(), false);
    sim.starts();
    sim.ok("src", None, json!({ "items": [10, 20, 30] }));
    let starts = sim.starts();
    assert_eq!(
        starts,
        [
            ("f".to_string(), Some(0)),
            ("f".to_string(), Some(1)),
            ("f".to_string(), Some(2))
        ]
    );
    sim.ok("f", Some(2), json!(31));
    sim.ok("f", Some(0), json!(11));
    assert!(sim.starts().is_empty());
    sim.ok("f", Some(1), json!(21));
    assert_eq!(ids(&sim.starts()), ["after"]);
    assert_eq!(sim.status("f"), NodeStatus::Completed);
    assert_eq!(sim.data.0.borrow()["f"], json!({ "results": [11, 21, 31] }));
}

#[test]
fn with_hooks_nothing_starts_before_the_hooks_answered() {
    let nodes = vec![node("a", &[]), node("b", &["a"])];
    let mut sim = Sim::new(nodes, DagConfig::default(), true);
    assert!(sim.starts().is_empty(), "RunStarted is not answered yet");
    assert!(matches!(
        sim.log[0],
        Effect::Emit(ExecutionEvent::RunStarted { nodes: 2, .. }, None)
    ));
    sim.step(Event::HookAnswered {
        commands: Vec::new(),
        panics: Vec::new(),
    });
    assert_eq!(ids(&sim.starts()), ["a"]);
    sim.step(Event::HookAnswered {
        commands: Vec::new(),
        panics: Vec::new(),
    });
    sim.ok("a", None, json!({}));
    assert!(
        sim.starts().is_empty(),
        "NodeCompleted of a is not answered yet"
    );
    sim.step(Event::HookAnswered {
        commands: Vec::new(),
        panics: Vec::new(),
    });
    assert_eq!(ids(&sim.starts()), ["b"]);
}

/// splitmix64, for seeded orders of events.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn any_order_of_completions_runs_every_node_once_within_the_limit() {
    for seed in 0..20u64 {
        let mut rng = seed;
        let (layers, width) = (6, 5);
        let mut nodes = Vec::new();
        for l in 0..layers {
            for c in 0..width {
                let deps: Vec<String> = if l == 0 {
                    Vec::new()
                } else {
                    (0..2)
                        .map(|_| format!("n{}", (l - 1) * width + (next(&mut rng) % width)))
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect()
                };
                let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
                nodes.push(node(&format!("n{}", l * width + c), &deps));
            }
        }
        let config = DagConfig {
            max_parallel_nodes: 3,
            max_attempts: Some(2),
            retry_strategy: RetryStrategy::ExponentialMs {
                initial_delay_ms: 10,
                max_delay_ms: 30_000,
                multiplier: 2.0,
            },
            ..Default::default()
        };
        let mut sim = Sim::new(nodes, config, false);
        let mut running: Vec<String> = ids(&sim.starts()).iter().map(|s| s.to_string()).collect();
        let mut timers = Vec::new();
        let mut started = running.len();
        let mut failed_once = std::collections::HashSet::new();
        while !running.is_empty() || !timers.is_empty() {
            assert!(running.len() <= 3, "seed {seed}: over the limit");
            let pick = next(&mut rng) as usize % (running.len() + timers.len());
            if pick < running.len() {
                let id = running.swap_remove(pick);
                // Each node fails its first attempt one time in four.
                if next(&mut rng).is_multiple_of(4) && failed_once.insert(id.clone()) {
                    sim.fail(&id, "flaky");
                } else {
                    sim.ok(&id, None, json!({}));
                }
            } else {
                let t = timers.swap_remove(pick - running.len());
                sim.step(Event::TimerFired(t));
            }
            for (id, _) in sim.starts() {
                started += 1;
                running.push(id);
            }
            for e in sim.log.drain(..) {
                if let Effect::Arm(t, _) = e {
                    timers.push(t);
                }
            }
        }
        assert!(sim.m.is_done(), "seed {seed}");
        assert_eq!(sim.m.end().0, RunStatus::Completed, "seed {seed}");
        assert_eq!(
            started,
            30 + failed_once.len(),
            "seed {seed}: one retry per failure"
        );
    }
}

// ----- waiting nodes: timers and signals ------------------------------------------

fn wait_node(id: &str, deps: &[&str], set: impl FnOnce(&mut NodeDef)) -> NodeDef {
    let mut n = node(id, deps);
    n.action = String::new();
    set(&mut n);
    n
}

fn signal(seq: u64, name: &str, payload: Value) -> Event {
    Event::Control(Control::Signal(super::msg::Signal {
        seq,
        name: name.into(),
        payload,
    }))
}

impl Sim {
    /// Steps `event` at time `at`.
    fn at(&mut self, at: i64, event: Event) {
        self.now = at - 1;
        self.step(event);
    }

    /// The last `Arm` of `Timer::Wake(node)` in the log, in ms.
    fn wake_armed(&self, id: &str) -> Option<u64> {
        let i = self.i(id);
        self.log.iter().rev().find_map(|e| match e {
            Effect::Arm(Timer::Wake(n), ms) if *n == i => Some(*ms),
            _ => None,
        })
    }
}

#[test]
fn a_sleeping_node_holds_no_slot_and_completes_when_its_timer_fires() {
    let nodes = vec![
        wait_node("nap", &[], |n| n.sleep = Some("10s".into())),
        node("busy", &[]),
        node("after", &["nap"]),
    ];
    let config = DagConfig {
        max_parallel_nodes: 1,
        ..Default::default()
    };
    let mut sim = Sim::new(nodes, config, false);
    // The sleeper waits; the one slot goes to `busy`.
    assert_eq!(ids(&sim.starts()), ["busy"]);
    assert_eq!(sim.status("nap"), NodeStatus::Waiting);
    assert_eq!(sim.wake_armed("nap"), Some(10_000));
    let nap = sim.i("nap");
    assert_eq!(sim.m.g.nodes[nap as usize].waiting_since(), None);
    assert_eq!(
        sim.m.g.nodes[nap as usize]
            .rare
            .as_ref()
            .and_then(|r| r.wake_at),
        Some(10_000)
    );
    sim.ok("busy", None, json!({}));
    assert!(sim.starts().is_empty());
    assert!(!sim.m.is_done(), "a sleeping node keeps the run going");
    // A timer that fires early (its clock ran ahead) is armed again.
    sim.at(9_000, Event::TimerFired(Timer::Wake(nap)));
    assert!(sim.starts().is_empty());
    assert_eq!(sim.status("nap"), NodeStatus::Waiting);
    assert_eq!(sim.wake_armed("nap"), Some(1_000));
    sim.at(10_002, Event::TimerFired(Timer::Wake(nap)));
    assert_eq!(sim.status("nap"), NodeStatus::Completed);
    assert_eq!(ids(&sim.starts()), ["after"]);
    let woke = sim.data.get("nap.wake_at").unwrap();
    assert_eq!(*woke, json!("1970-01-01T00:00:10.000Z"));
    sim.ok("after", None, json!({}));
    assert_eq!(sim.m.end().0, RunStatus::Completed);
}

/// A machine over `nodes`, their states prepared by `prep` (as a resume
/// restores them), not yet started.
fn bare_machine(nodes: Vec<NodeDef>, prep: impl FnOnce(&mut [NodeState])) -> Machine {
    let wf = Arc::new(workflow(nodes));
    let mut states: Vec<NodeState> = (0..wf.nodes.len())
        .map(|i| {
            NodeState::new(
                Arc::from(wf.nodes[i].id.as_str()),
                DefHandle::Static(wf.clone(), i as u32),
                ActionRef::from(Arc::new(Noop) as Arc<dyn NodeAction>),
                false,
            )
        })
        .collect();
    prep(&mut states);
    Machine::new(Params {
        graph: RunGraph::new(states, false, true),
        wf,
        added: Vec::new(),
        config: DagConfig::default(),
        registry: ActionRegistry::new(),
        failure_actions: HashMap::new(),
        restored_invocations: HashMap::new(),
        grace_ms: 1_000,
        seed: 7,
        consumed_signals: Default::default(),
    })
}

#[test]
fn a_recorded_wake_up_time_is_kept_and_an_overdue_one_fires_at_once() {
    let nodes = vec![wait_node("nap", &[], |n| n.sleep = Some("1h".into()))];
    // Restored from the record: it was to wake at 5 s.
    let mut m = bare_machine(nodes, |s| s[0].rare_mut().wake_at = Some(5_000));
    // Resumed at 60 s: the wake-up time passed while nothing ran.
    m.start(60_000, true);
    let data = Data::default();
    m.advance(60_000, &data);
    let mut fx = Vec::new();
    m.drain(&mut fx);
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Arm(Timer::Wake(0), 0))),
        "armed to fire now"
    );
    m.step(Event::TimerFired(Timer::Wake(0)), 60_001, &data);
    assert_eq!(m.g.nodes[0].status, NodeStatus::Completed);
    assert_eq!(m.end().0, RunStatus::Completed);
}

#[test]
fn wait_until_reads_its_time_from_the_run_inputs() {
    let nodes = vec![wait_node("gate", &[], |n| {
        n.wait_until = Some("{{ inputs.at }}".into())
    })];
    let mut m = bare_machine(nodes, |_| {});
    let data = Data::default();
    data.put("inputs", &json!({ "at": "1970-01-01T00:01:00Z" }));
    m.start(5, false);
    m.advance(5, &data);
    let mut fx = Vec::new();
    m.drain(&mut fx);
    assert_eq!(m.g.nodes[0].status, NodeStatus::Waiting);
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Arm(Timer::Wake(0), 59_995)))
    );
}

#[test]
fn a_cancel_ends_a_waiting_node_and_the_run() {
    let nodes = vec![wait_node("nap", &[], |n| n.sleep = Some("1h".into()))];
    let mut sim = Sim::new(nodes, DagConfig::default(), false);
    sim.starts();
    sim.step(Event::Control(Control::Cancel("stop".into())));
    assert!(sim.m.is_done());
    assert_eq!(sim.m.end().0, RunStatus::Cancelled);
    assert_eq!(sim.status("nap"), NodeStatus::Cancelled);
}

#[test]
fn a_signal_sent_before_the_node_waits_is_kept_and_delivered() {
    let nodes = vec![
        node("first", &[]),
        wait_node("pay", &["first"], |n| {
            n.wait_for = Some(dagger_dag_flow::WaitFor {
                signal: "paid".into(),
                matches: Some("/order == {{ first.order }}".into()),
                ..Default::default()
            })
        }),
        node("ship", &["pay"]),
    ];
    let mut sim = Sim::new(nodes, DagConfig::default(), false);
    assert_eq!(ids(&sim.starts()), ["first"]);
    // Another order's payment, then this one's, before `pay` waits.
    sim.step(signal(1, "paid", json!({ "order": 2, "amount": 5 })));
    sim.step(signal(2, "paid", json!({ "order": 1, "amount": 9 })));
    sim.step(signal(2, "paid", json!({ "order": 1, "amount": 9 })));
    assert_eq!(sim.m.kept.len(), 2, "a repeated signal is kept once");
    sim.ok("first", None, json!({ "order": 1 }));
    assert_eq!(sim.status("pay"), NodeStatus::Completed);
    assert_eq!(*sim.data.get("pay.amount").unwrap(), json!(9));
    let pay = sim.i("pay");
    assert_eq!(
        sim.m.g.nodes[pay as usize]
            .rare
            .as_ref()
            .and_then(|r| r.signal_seq),
        Some(2)
    );
    assert_eq!(ids(&sim.starts()), ["ship"]);
    // The other order's payment stays kept; a taken one is not taken again.
    assert_eq!(sim.m.kept.len(), 1);
    assert!(sim.m.consumed.contains(&2));
}

#[test]
fn a_signal_refused_by_the_schema_is_not_taken() {
    let nodes = vec![wait_node("pay", &[], |n| {
        n.wait_for = Some(dagger_dag_flow::WaitFor {
            signal: "paid".into(),
            schema: Some(json!({ "type": "object", "required": ["amount"] })),
            ..Default::default()
        })
    })];
    let mut sim = Sim::new(nodes, DagConfig::default(), false);
    sim.starts();
    sim.step(signal(1, "paid", json!({ "note": "no amount" })));
    sim.step(signal(2, "other", json!({ "amount": 1 })));
    assert_eq!(sim.status("pay"), NodeStatus::Waiting);
    sim.step(signal(3, "paid", json!({ "amount": 1 })));
    assert_eq!(sim.status("pay"), NodeStatus::Completed);
}

#[test]
fn a_signal_timeout_fails_skips_or_continues() {
    use dagger_dag_flow::OnTimeout;
    for (on_timeout, node_status, next, run) in [
        (
            OnTimeout::Fail,
            NodeStatus::Failed,
            NodeStatus::Skipped,
            RunStatus::Failed,
        ),
        (
            OnTimeout::Skip,
            NodeStatus::Skipped,
            NodeStatus::Skipped,
            RunStatus::Completed,
        ),
        (
            OnTimeout::Continue,
            NodeStatus::Completed,
            NodeStatus::Running,
            RunStatus::Completed,
        ),
    ] {
        let nodes = vec![
            wait_node("pay", &[], |n| {
                n.wait_for = Some(dagger_dag_flow::WaitFor {
                    signal: "paid".into(),
                    timeout: Some("2s".into()),
                    on_timeout,
                    ..Default::default()
                })
            }),
            node("ship", &["pay"]),
        ];
        let mut sim = Sim::new(nodes, DagConfig::default(), false);
        sim.starts();
        assert_eq!(sim.wake_armed("pay"), Some(2_000));
        let pay = sim.i("pay");
        sim.at(2_000, Event::TimerFired(Timer::Wake(pay)));
        assert_eq!(sim.status("pay"), node_status, "{on_timeout:?}");
        assert_eq!(sim.status("ship"), next, "{on_timeout:?}");
        if next == NodeStatus::Running {
            assert_eq!(*sim.data.get("pay.timed_out").unwrap(), json!(true));
            sim.ok("ship", None, json!({}));
        }
        assert!(sim.m.is_done(), "{on_timeout:?}");
        assert_eq!(sim.m.end().0, run, "{on_timeout:?}");
    }
}

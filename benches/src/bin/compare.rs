//! The comparative harness: runs each workload's exact shape on Dagger, its
//! peers and the hand-written floor in the same process, and prints one
//! `RESULT` line per (workload, engine) in the format of `WORKLOADS.md`.
//!
//! `cargo run --release -p dagger-benches --bin compare -- --workload D1|D2|D3|D4|D6|Q1|P1|P2|all [--reps N]`
//!
//! The scale-out workloads need PostgreSQL (`DAGGER_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`) and are not part of
//! `all`: `--workload Q1-PG [--tasks N]` (N no-op tasks, default 100,000,
//! with 1, 2, 4 worker processes), `--workload Q1-PG-io [--tasks N]` (N
//! tasks, default 10,000, that each wait 5 ms) and `--workload D8 [--layers L]` (the D1
//! shape, L layers of 100 nodes, default 100, run by 1, 2, 4 worker
//! processes and `--local`). Each line's ratio is to the SQLite run of the
//! same size in the same round (Q1 with as many workers; D6 `Batched`).
//!
//! Times are medians of `--reps` runs (default 5) after one warm-up run,
//! engines interleaved run by run so machine noise hits them alike. Peak
//! memory is measured in a fresh child process per (workload, engine), one
//! run each, so one engine's heap never inflates another's figure.

use dagger_benches::engines::{self, postgres};
use dagger_benches::rss;
use dagger_benches::shape::Shape;
use dagger_benches::workload::{Dag, Engine, Paradigm, median};
use dagger_benches::{on_workers, runtime};
use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tasks per Q1-PG run (WORKLOADS.md's Q1).
const Q1_TASKS: usize = dagger_benches::workload::Q1_TASKS;
/// Tasks per Q1-PG-io run, each waiting 5 ms.
const Q1_IO_TASKS: usize = 10_000;

const USAGE: &str = "usage: compare --workload D1|D2|D3|D4|D6|Q1|P1|P2|all|Q1-PG|Q1-PG-io|D8 [--reps N] [--engine NAME] [--no-memory] [--prometheus] [--tasks N] [--layers L]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--memory-child") {
        return memory_child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some(postgres::WORKER_FLAG) {
        return postgres::worker_main(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--memory-child-paradigm") {
        return memory_child_paradigm(&args[1..]);
    }
    let mut workload = None;
    let mut reps = 5usize;
    let mut only: Option<Engine> = None;
    let mut memory = true;
    let mut tasks = None;
    let mut layers = 100usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--workload" => workload = it.next().cloned(),
            "--reps" => match it.next().and_then(|r| r.parse().ok()) {
                Some(r) if r >= 1 => reps = r,
                _ => {
                    eprintln!("--reps takes a positive number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--engine" => match it.next().and_then(|e| Engine::parse(e)) {
                Some(e) => only = Some(e),
                None => {
                    eprintln!("--engine takes an engine name\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--no-memory" => memory = false,
            "--tasks" => match it.next().and_then(|r| r.parse().ok()) {
                Some(n) if n >= 1 => tasks = Some(n),
                _ => {
                    eprintln!("--tasks takes a positive number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--layers" => match it.next().and_then(|r| r.parse().ok()) {
                Some(n) if n >= 1 => layers = n,
                _ => {
                    eprintln!("--layers takes a positive number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            // Dagger's metrics recorded (without it the facade is a no-op).
            "--prometheus" => {
                if let Err(e) = dagger_core::metrics::install_prometheus() {
                    eprintln!("--prometheus: {e}");
                    return ExitCode::from(2);
                }
            }
            other => {
                eprintln!("unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(workload) = workload else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let selected: Vec<&str> = match workload.as_str() {
        "all" => vec!["D1", "D2", "D3", "D4", "D6", "Q1", "P1", "P2"],
        "D1" | "D2" | "D3" | "D4" | "D6" | "Q1" | "P1" | "P2" | "Q1-PG" | "Q1-PG-io" | "D8" => {
            vec![workload.as_str()]
        }
        other => {
            eprintln!("unknown workload `{other}`\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let opts = Options { reps, only, memory };
    let started = Instant::now();
    for w in selected {
        match w {
            "D4" => {
                compare_dag(Dag::D4Fan, &opts);
                compare_dag(Dag::D4Dense, &opts);
            }
            "Q1-PG" => compare_q1_pg("Q1-PG", tasks.unwrap_or(Q1_TASKS), Duration::ZERO, &opts),
            "Q1-PG-io" => compare_q1_pg(
                "Q1-PG-io",
                tasks.unwrap_or(Q1_IO_TASKS),
                Duration::from_millis(5),
                &opts,
            ),
            "D8" => compare_d8(layers, &opts),
            "Q1" | "P1" | "P2" => {
                for case in Paradigm::cases(w) {
                    compare_paradigm(case, &opts);
                }
            }
            other => compare_dag(Dag::parse(other).expect("listed above"), &opts),
        }
    }
    eprintln!("compare: done in {:.1} s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

/// What the command line chose.
struct Options {
    reps: usize,
    /// Run only this engine (for profiling).
    only: Option<Engine>,
    /// Measure memory in child processes.
    memory: bool,
}

/// Medians of one engine on one workload.
struct Figures {
    per_node_us: f64,
    build_ms: f64,
}

fn compare_dag(dag: Dag, opts: &Options) {
    let shape = Arc::new(dag.shape());
    let nodes = shape.len();
    let engines: Vec<Engine> = dag
        .engines()
        .iter()
        .copied()
        .filter(|e| opts.only.is_none_or(|o| o == *e))
        .collect();
    if engines.is_empty() {
        return;
    }
    let reps = opts.reps;
    let rt = runtime();
    let mut runs: HashMap<&str, (Vec<f64>, Vec<f64>)> = HashMap::new();
    // One warm-up run each (allocator, page faults, lazy statics), then
    // `reps` rounds with the engines interleaved.
    for round in 0..=reps {
        for &e in &engines {
            let t = on_workers(&rt, e.build_and_run(shape.clone()));
            eprintln!(
                "  {} {:<22} round {round}: run {:>9.2} ms, build {:>8.2} ms",
                dag.id(),
                e.name(),
                t.run.as_secs_f64() * 1e3,
                t.build.as_secs_f64() * 1e3
            );
            if round > 0 {
                let entry = runs.entry(e.name()).or_default();
                entry.0.push(t.run.as_secs_f64() * 1e6 / nodes as f64);
                entry.1.push(t.build.as_secs_f64() * 1e3);
            }
        }
    }
    drop(rt);
    let figures: HashMap<&str, Figures> = runs
        .into_iter()
        .map(|(name, (mut per_node, mut build))| {
            (
                name,
                Figures {
                    per_node_us: median(&mut per_node),
                    build_ms: median(&mut build),
                },
            )
        })
        .collect();
    let reference = figures[engines[0].name()].per_node_us;
    for &e in &engines {
        let f = &figures[e.name()];
        let memory = if opts.memory {
            measure_memory(dag, e)
        } else {
            None
        };
        let peak_mb = memory.map_or(f64::NAN, |(_, peak)| peak as f64 / (1024.0 * 1024.0));
        println!(
            "RESULT workload={} engine={} nodes={nodes} per_node_us={:.3} build_ms={:.2} peak_rss_mb={:.1} ratio_vs_dagger={:.2}",
            dag.id(),
            e.name(),
            f.per_node_us,
            f.build_ms,
            peak_mb,
            f.per_node_us / reference
        );
        if let Some((baseline, peak)) = memory {
            println!(
                "MEMORY workload={} engine={} nodes={nodes} bytes_per_node={:.0}",
                dag.id(),
                e.name(),
                peak.saturating_sub(baseline) as f64 / nodes as f64
            );
        }
        if dag == Dag::D6 {
            println!(
                "THROUGHPUT workload=D6 engine={} completions_per_s={:.0}",
                e.name(),
                1e6 / f.per_node_us
            );
        }
    }
}

/// Runs a Task Agent or Pub/Sub case (Dagger only) and prints its line and rate.
fn compare_paradigm(case: Paradigm, opts: &Options) {
    if opts.only.is_some_and(|e| e != Engine::Dagger) {
        return;
    }
    let rt = runtime();
    let units = case.units();
    let (mut per_unit, mut build) = (Vec::new(), Vec::new());
    for round in 0..=opts.reps {
        let t = on_workers(&rt, case.run());
        eprintln!(
            "  {:<10} dagger round {round}: run {:>9.2} ms, build {:>8.2} ms",
            case.id(),
            t.run.as_secs_f64() * 1e3,
            t.build.as_secs_f64() * 1e3
        );
        if round > 0 {
            per_unit.push(t.run.as_secs_f64() * 1e6 / units as f64);
            build.push(t.build.as_secs_f64() * 1e3);
        }
    }
    drop(rt);
    let per_unit = median(&mut per_unit);
    let memory = if opts.memory {
        child_memory(&["--memory-child-paradigm".to_string(), case.id()])
    } else {
        None
    };
    let peak_mb = memory.map_or(f64::NAN, |(_, peak)| peak as f64 / (1024.0 * 1024.0));
    println!(
        "RESULT workload={} engine=dagger nodes={units} per_node_us={per_unit:.3} build_ms={:.2} peak_rss_mb={peak_mb:.1} ratio_vs_dagger=1.00",
        case.id(),
        median(&mut build),
    );
    println!(
        "THROUGHPUT workload={} engine=dagger {}={:.0}",
        case.id(),
        case.unit_name(),
        1e6 / per_unit
    );
}

fn memory_child_paradigm(args: &[String]) -> ExitCode {
    let Some(case) = args.first().and_then(|c| Paradigm::parse(c)) else {
        eprintln!("usage: compare --memory-child-paradigm CASE");
        return ExitCode::from(2);
    };
    let rt = runtime();
    on_workers(&rt, async {});
    let Some(before) = rss::read() else {
        eprintln!("/proc/self/status is not readable");
        return ExitCode::FAILURE;
    };
    on_workers(&rt, case.run());
    let Some(after) = rss::read() else {
        return ExitCode::FAILURE;
    };
    println!("CHILD baseline={} peak={}", before.current, after.peak);
    ExitCode::SUCCESS
}

/// Runs `dag` once on `engine` in a fresh child process and returns its
/// resident set before building (shape and runtime ready) and its peak.
fn measure_memory(dag: Dag, engine: Engine) -> Option<(u64, u64)> {
    child_memory(&[
        "--memory-child".to_string(),
        dag.id().to_string(),
        engine.name().to_string(),
    ])
}

/// Runs this program with `args` and reads the child's `CHILD` line.
fn child_memory(args: &[String]) -> Option<(u64, u64)> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "memory child {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("CHILD "))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("baseline=")?, field("peak=")?))
}

fn memory_child(args: &[String]) -> ExitCode {
    let (Some(dag), Some(engine)) = (
        args.first().and_then(|d| Dag::parse(d)),
        args.get(1).and_then(|e| Engine::parse(e)),
    ) else {
        eprintln!("usage: compare --memory-child WORKLOAD ENGINE");
        return ExitCode::from(2);
    };
    let shape = Arc::new(dag.shape());
    let rt = runtime();
    // Start the workers before the baseline so their stacks are not counted.
    on_workers(&rt, async {});
    let Some(before) = rss::read() else {
        eprintln!("/proc/self/status is not readable");
        return ExitCode::FAILURE;
    };
    on_workers(&rt, engine.build_and_run(shape));
    let Some(after) = rss::read() else {
        return ExitCode::FAILURE;
    };
    println!("CHILD baseline={} peak={}", before.current, after.peak);
    ExitCode::SUCCESS
}

/// One Postgres case against its SQLite reference, `reps` rounds (no
/// warm-up: every run starts fresh processes and a fresh schema), the two
/// alternated; prints the `RESULT` and `THROUGHPUT` lines.
fn compare_pg<P, S>(id: &str, units: usize, unit: &str, reps: usize, pg: P, sqlite: S)
where
    P: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = engines::Timing> + Send>>,
    S: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = engines::Timing> + Send>>,
{
    let rt = runtime();
    let (mut pg_us, mut pg_build, mut sq_us) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=reps {
        let t = on_workers(&rt, pg());
        let s = on_workers(&rt, sqlite());
        eprintln!(
            "  {id:<10} round {round}: postgres {:>9.1} ms ({:.0} {unit}), sqlite {:>8.1} ms",
            t.run.as_secs_f64() * 1e3,
            units as f64 / t.run.as_secs_f64(),
            s.run.as_secs_f64() * 1e3
        );
        pg_us.push(t.run.as_secs_f64() * 1e6 / units as f64);
        pg_build.push(t.build.as_secs_f64() * 1e3);
        sq_us.push(s.run.as_secs_f64() * 1e6 / units as f64);
    }
    drop(rt);
    let (per_unit, sqlite_per_unit) = (median(&mut pg_us), median(&mut sq_us));
    println!(
        "RESULT workload={id} engine=dagger-postgres nodes={units} per_node_us={per_unit:.3} build_ms={:.2} peak_rss_mb=NaN sqlite_per_node_us={sqlite_per_unit:.3} ratio_vs_sqlite={:.2}",
        median(&mut pg_build),
        per_unit / sqlite_per_unit
    );
    println!(
        "THROUGHPUT workload={id} engine=dagger-postgres {unit}={:.0}",
        1e6 / per_unit
    );
}

/// Q1-PG: `tasks` tasks of one job, each waiting `io` (Q1-PG-io) or not
/// (Q1-PG), 1, 2 and 4 worker processes.
fn compare_q1_pg(id: &str, tasks: usize, io: Duration, opts: &Options) {
    for workers in [1usize, 2, 4] {
        compare_pg(
            &format!("{id}-w{workers}"),
            tasks,
            "tasks_per_s",
            opts.reps,
            || Box::pin(postgres::q1(tasks, workers, io)),
            || Box::pin(engines::paradigms::q1(tasks, workers, io)),
        );
    }
}

/// D8: the D1 shape (`layers` layers of 100) on Postgres, 1, 2, 4 worker
/// processes and `--local`.
fn compare_d8(layers: usize, opts: &Options) {
    let shape = Arc::new(Shape::layered(layers, 100, 2));
    let nodes = shape.len();
    for workers in [Some(1usize), Some(2), Some(4), None] {
        let id = match workers {
            Some(w) => format!("D8-w{w}"),
            None => "D8-local".to_string(),
        };
        let (pg, sq) = (shape.clone(), shape.clone());
        compare_pg(
            &id,
            nodes,
            "nodes_per_s",
            opts.reps,
            move || Box::pin(postgres::d8(pg.clone(), workers)),
            move || {
                let sq = sq.clone();
                Box::pin(async move {
                    engines::dagger::build_and_run_sqlite(
                        &sq,
                        dagger_core::store::Durability::Batched,
                    )
                    .await
                })
            },
        );
    }
}

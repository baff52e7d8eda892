//! Workload D5 of `shared/bench/WORKLOADS.md`: D1's graph, layered(100, 100, 2)
//! = 10,000 nodes, written as a YAML file; parse + validate time, and the
//! validation alone on the already-parsed definition, and serde-saphyr's own
//! parse of the text (the floor under the first figure).

use criterion::{Criterion, criterion_main};
use dagger_dag_flow::{load_yaml_str, validate_workflow};
use std::fmt::Write as _;
use std::hint::black_box;

/// The workloads' deterministic generator.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// layered(L, W, k) as a workflow YAML document.
fn layered_yaml(layers: u64, width: u64, k: usize) -> String {
    let mut rng = SplitMix64(42);
    let mut out = String::from("name: d5_layered\nnodes:\n");
    for l in 0..layers {
        for c in 0..width {
            let id = l * width + c;
            let _ = write!(out, "  - id: n{id}\n    action: noop\n");
            if l == 0 {
                continue;
            }
            let mut cols: Vec<u64> = Vec::with_capacity(k);
            while cols.len() < k {
                let col = rng.next() % width;
                if !cols.contains(&col) {
                    cols.push(col);
                }
            }
            let deps: Vec<String> = cols
                .iter()
                .map(|col| format!("n{}", (l - 1) * width + col))
                .collect();
            let _ = writeln!(out, "    dependencies: [{}]", deps.join(", "));
        }
    }
    out
}

fn d5(c: &mut Criterion) {
    let yaml = layered_yaml(100, 100, 2);
    let def = load_yaml_str(&yaml, "d5.yaml").expect("D5 is a valid workflow");
    assert_eq!(def.nodes.len(), 10_000);
    let mut group = c.benchmark_group("D5");
    group.sample_size(20);
    group.bench_function("parse_and_validate_10k_nodes", |b| {
        b.iter(|| load_yaml_str(black_box(&yaml), "d5.yaml").expect("valid"))
    });
    // The floor: serde-saphyr parsing the same text into nothing.
    group.bench_function("saphyr_parse_only_floor", |b| {
        b.iter(|| serde_saphyr::from_str::<serde::de::IgnoredAny>(black_box(&yaml)).expect("valid"))
    });
    group.bench_function("validate_only_10k_nodes", |b| {
        b.iter(|| validate_workflow(black_box(&def), "d5").expect("valid"))
    });
    group.finish();
}

/// Criterion's entry points.
mod harness {
    // `criterion_group!` defines an undocumented `pub fn`.
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::d5);
}
criterion_main!(harness::benches);

//! `dagger validate` and `dagger dot` on a 100,000-node dependency chain
//! (about 5.9 MB of YAML, under the size limit): both exit 0. A recursive
//! graph walk overflowed the main thread's stack here (exit 134).

use std::fmt::Write as _;
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dagger")
}

fn chain_yaml(n: usize) -> String {
    let mut y = String::with_capacity(n * 60);
    y.push_str("name: chain\nnodes:\n");
    for i in 0..n {
        let _ = writeln!(y, "  - id: n{i}\n    action: echo");
        if i > 0 {
            let _ = writeln!(y, "    dependencies: [n{}]", i - 1);
        }
    }
    y
}

#[test]
fn validate_and_dot_handle_a_100k_node_chain() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.yaml");
    std::fs::write(&file, chain_yaml(100_000)).unwrap();
    let file = file.to_str().unwrap();

    let out = Command::new(bin())
        .args(["validate", file])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(bin()).args(["dot", file]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "dot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(
        dot.contains("\"n99998\" -> \"n99999\""),
        "the last edge is drawn"
    );
}

//! temporary
#[test]
fn probe() {
    let mut paths: Vec<_> = std::fs::read_dir("tests/fixtures/invalid").unwrap().map(|e| e.unwrap().path()).collect();
    paths.extend(std::fs::read_dir("tests/fixtures/valid").unwrap().map(|e| e.unwrap().path()));
    paths.sort();
    for p in paths {
        let t = std::time::Instant::now();
        match dagger_dag_flow::load_yaml_path(&p) {
            Ok(d) => println!("OK {} {:?}", p.display(), d.nodes.len()),
            Err(e) => println!("{e}"),
        }
        println!("   ({:?})", t.elapsed());
    }
}

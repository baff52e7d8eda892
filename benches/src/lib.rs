//! Workload shapes and engines for Dagger's benchmarks: the criterion
//! benches (`cargo bench -p dagger-benches`) and the comparative harness
//! (`cargo run --release -p dagger-benches --bin compare -- --workload all`)
//! share them, so both measure the same graphs the same way.
//!
//! The workloads are those of `WORKLOADS.md` (D1–D7); see
//! `docs/performance.md` for how each peer is made to do the same work.

pub mod engines;
pub mod rss;
pub mod shape;
pub mod workload;

/// The runtime every engine runs on: tokio, multi-threaded, 2 workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

/// Runs `fut` as a task on `rt`'s workers (not on the calling thread, so
/// every engine gets exactly the 2 worker threads) and waits for it.
pub fn on_workers<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async move { tokio::spawn(fut).await.expect("benchmark task completes") })
}

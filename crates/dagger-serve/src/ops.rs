//! Routes for whoever operates the process rather than uses it:
//! `GET /metrics` (Prometheus text exposition of every `dagger_*` metric),
//! `GET /healthz` (the process answers) and `GET /readyz` (the store
//! answers a read). `dagger serve` mounts them beside its pages;
//! `dagger worker --metrics-addr` serves them alone ([`ops_router`]).

use crate::error::ServeError;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dagger_core::metrics::PrometheusHandle;
use dagger_core::{RunId, Stores};
use std::sync::Arc;
use std::time::Duration;

/// How long `/readyz` waits for the store before it answers 503.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the operational routes read.
#[derive(Clone)]
struct Ops {
    stores: Stores,
    /// `Err`: why no recorder could be installed (`/metrics` answers 503 with it).
    metrics: Arc<Result<PrometheusHandle, String>>,
}

/// `/metrics`, `/healthz` and `/readyz` over `stores`, with the process's
/// Prometheus recorder (installed here if it was not yet: see
/// [`dagger_core::metrics::install_prometheus`]).
pub fn ops_router<S: Clone + Send + Sync + 'static>(stores: Stores) -> Router<S> {
    let metrics = dagger_core::metrics::install_prometheus().map_err(|e| {
        tracing::warn!(error = %e, "GET /metrics will answer 503");
        e.to_string()
    });
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Ops {
            stores,
            metrics: Arc::new(metrics),
        })
}

async fn metrics_text(State(ops): State<Ops>) -> Response {
    match &*ops.metrics {
        Ok(handle) => {
            handle.run_upkeep();
            ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], handle.render()).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the store answers a read of one run record (a run that does
/// not exist: the answer is cheap on every backend), 503 with the reason
/// otherwise.
async fn readyz(State(ops): State<Ops>) -> Response {
    let probe = RunId::from("dagger-readyz-probe");
    let read = tokio::time::timeout(READY_TIMEOUT, ops.stores.runs.get_run(&probe)).await;
    match read {
        Ok(Ok(_)) => "ready\n".into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store does not answer: {e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the store did not answer within {}s\n",
                READY_TIMEOUT.as_secs()
            ),
        )
            .into_response(),
    }
}

/// Serves only [`ops_router`] on `listener` until `shutdown` completes
/// (what `dagger worker --metrics-addr` runs beside its work).
///
/// # Errors
/// [`ServeError::Serve`] when serving the socket fails.
pub async fn serve_ops(
    listener: tokio::net::TcpListener,
    stores: Stores,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, ops_router::<()>(stores))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
}

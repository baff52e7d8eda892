//! `--metrics-addr`: the operational routes (`/metrics`, `/healthz`,
//! `/readyz`, see `dagger_serve::ops_router`) served beside a command's work.

use crate::error::CliError;
use dagger_core::Stores;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Installs the Prometheus recorder and binds `addr` (if given), printing
/// where the routes answer.
pub(crate) async fn listen(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, CliError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    dagger_core::metrics::install_prometheus().map_err(|e| CliError::Other(e.to_string()))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Other(format!("--metrics-addr: cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().unwrap_or(addr);
    errln!("metrics on http://{local}/metrics (health: /healthz, /readyz)");
    Ok(Some(listener))
}

/// Serves the routes on `listener` over `stores` until `stop` is cancelled.
pub(crate) fn spawn(
    listener: TcpListener,
    stores: Stores,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move { stop.cancelled().await };
        if let Err(e) = dagger_serve::serve_ops(listener, stores, shutdown).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    })
}

//! A TCP proxy on loopback that a test can cut, to put a network partition
//! between one process and a server (Postgres) while the others still reach
//! it directly. Shared (`#[path]`) by the pool fault tests.
//!
//! [`TcpProxy::cut`] closes every connection it carries and refuses new ones
//! (each is accepted and closed at once, as a reset would end it) until
//! [`TcpProxy::restore`]; the processes behind it see their sessions end and
//! their reconnections fail, as across a cut link.
#![allow(dead_code)] // each test file uses its own part

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// What the accept loop and the switch share.
#[derive(Default)]
struct State {
    /// False while cut.
    open: AtomicBool,
    /// The copying tasks of the connections carried now.
    carried: Mutex<JoinSet<()>>,
    /// Connections accepted and closed while cut.
    refused: AtomicU64,
}

/// A proxy from `127.0.0.1:<port>` to an upstream address, on a runtime of
/// its own (dropped with it).
pub(crate) struct TcpProxy {
    port: u16,
    state: Arc<State>,
    rt: Option<tokio::runtime::Runtime>,
}

impl TcpProxy {
    /// Starts a proxy to `upstream` (`host:port`) on a free loopback port.
    pub(crate) fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = upstream.parse().expect("upstream is host:port");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        state.open.store(true, Ordering::SeqCst);
        rt.spawn(accept(listener, upstream, state.clone()));
        Self {
            port,
            state,
            rt: Some(rt),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection carried now and refuses new ones.
    pub(crate) fn cut(&self) {
        self.state.open.store(false, Ordering::SeqCst);
        let state = self.state.clone();
        // Aborting a copying task drops both of its sockets (closing them).
        self.rt
            .as_ref()
            .unwrap()
            .block_on(async move { state.carried.lock().await.shutdown().await });
    }

    /// Carries new connections again.
    pub(crate) fn restore(&self) {
        self.state.open.store(true, Ordering::SeqCst);
    }

    /// Connections refused while cut so far.
    pub(crate) fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, state: Arc<State>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        if !state.open.load(Ordering::SeqCst) {
            state.refused.fetch_add(1, Ordering::SeqCst);
            drop(inbound);
            continue;
        }
        let mut carried = state.carried.lock().await;
        // Forget the connections that ended by themselves.
        while carried.try_join_next().is_some() {}
        carried.spawn(carry(inbound, upstream));
    }
}

async fn carry(mut inbound: TcpStream, upstream: SocketAddr) {
    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

/// `url` (`postgres://user@host:port/db`) with its host and port replaced
/// by the proxy's, and the `host:port` it named.
pub(crate) fn through(url: &str, proxy_port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}127.0.0.1:{proxy_port}/{tail}")
}

/// The `host:port` of `url`, with 5432 when it names no port.
pub(crate) fn upstream_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (name, port) = host.rsplit_once(':').unwrap_or((host, "5432"));
    let name = if name == "localhost" {
        "127.0.0.1"
    } else {
        name
    };
    format!("{name}:{port}")
}

//! The web interface of Dagger, served by `dagger serve`: runs (list, detail
//! with a live graph, cancel / resume / approve / reject), workflow
//! definitions, and a JSON API under `/api/` for all of it (see
//! `docs/serve.md`).
//!
//! HTML is rendered on the server with [maud] (every interpolated string is
//! escaped); live updates arrive as server-sent events; the little script
//! and the stylesheet are compiled into the binary. Graphs are laid out with
//! `layout-rs` up to [`MAX_GRAPH_NODES`] nodes; larger runs show the table.
//!
//! ```no_run
//! # async fn demo(stores: dagger_core::Stores) -> Result<(), dagger_serve::ServeError> {
//! use dagger_serve::{ServeOptions, Server, bind};
//! let listener = bind("127.0.0.1:8080".parse().unwrap(), None).await?;
//! let server = Server::new(ServeOptions::new(stores))?;
//! server.serve(listener, std::future::pending()).await
//! # }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod actions;
mod api;
mod assets;
mod channels;
mod data;
pub mod error;
mod graph;
mod jobs;
mod live;
mod logs;
mod ops;
mod pages;
mod security;
mod start;
mod state;
mod web;

pub use error::{RequestError, ServeError};
pub use graph::MAX_GRAPH_NODES;
pub use ops::{ops_router, serve_ops};
pub use security::{MIN_TOKEN_LEN, check_bind};
pub use state::WorkflowCatalog;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use dagger_core::Stores;
use dagger_core::store::{MessageLog, TaskStore};
use dagger_dag_flow::{ActionRegistry, load_yaml_path};
use state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What the server shows and how it acts.
#[derive(Clone)]
pub struct ServeOptions {
    /// Where runs are read from and control requests written to.
    pub stores: Stores,
    /// Workflow definitions for the Workflows page.
    pub catalog: WorkflowCatalog,
    /// The actions a run resumed from the page executes with.
    pub registry: ActionRegistry,
    /// Application data handed to those actions as `NodeCtx::app_data`.
    pub app_data: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// Task Agent jobs for the Jobs page (the page is left out without it).
    pub tasks: Option<Arc<dyn TaskStore>>,
    /// The Pub/Sub message log for the Channels page (left out without it).
    pub messages: Option<Arc<dyn MessageLog>>,
    /// A token that mutating requests must carry (bearer header or login cookie).
    pub token: Option<String>,
    /// How often a live run page's stream re-reads the run (default 500 ms).
    pub live_interval: Duration,
    /// Take over orphaned runs (unfinished, their owner's lease lapsed),
    /// checking this often; `None` (the default) leaves them alone.
    pub resume_orphans: Option<Duration>,
    /// The lease this server holds on the runs it resumes (`None`: the
    /// coordinator's default of 15 s).
    pub run_lease: Option<Duration>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("stores", &self.stores)
            .field("workflows", &self.catalog.workflows.len())
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("live_interval", &self.live_interval)
            .finish_non_exhaustive()
    }
}

impl ServeOptions {
    /// Options over `stores` with no workflows, no actions and no token.
    pub fn new(stores: Stores) -> Self {
        Self {
            stores,
            catalog: WorkflowCatalog::default(),
            registry: ActionRegistry::new(),
            app_data: None,
            tasks: None,
            messages: None,
            token: None,
            live_interval: Duration::from_millis(500),
            resume_orphans: None,
            run_lease: None,
        }
    }

    /// Shows these workflow definitions.
    pub fn with_catalog(mut self, catalog: WorkflowCatalog) -> Self {
        self.catalog = catalog;
        self
    }

    /// Resumes runs with these actions.
    pub fn with_registry(mut self, registry: ActionRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Hands `data` to the actions of runs resumed here as `NodeCtx::app_data`.
    pub fn with_app_data(mut self, data: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        self.app_data = Some(data);
        self
    }

    /// Shows the Task Agent jobs of `store`.
    pub fn with_task_store(mut self, store: Arc<dyn TaskStore>) -> Self {
        self.tasks = Some(store);
        self
    }

    /// Shows the Pub/Sub channels of `log`.
    pub fn with_message_log(mut self, log: Arc<dyn MessageLog>) -> Self {
        self.messages = Some(log);
        self
    }

    /// Requires `token` on mutating requests.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Resumes orphaned runs in this server: every `every`, each
    /// unfinished run whose owner's lease lapsed (its process died) is
    /// taken over with the server's actions, as the Resume button would.
    /// Of several servers (or workers) doing so, one takes each run.
    pub fn with_resume_orphans(mut self, every: Duration) -> Self {
        self.resume_orphans = Some(every.max(Duration::from_millis(10)));
        self
    }

    /// The lease this server holds on the runs it resumes (see
    /// `Coordinator::with_run_lease`).
    pub fn with_run_lease(mut self, lease: Duration) -> Self {
        self.run_lease = Some(lease);
        self
    }

    /// Re-reads live runs this often (at least 10 ms).
    pub fn with_live_interval(mut self, every: Duration) -> Self {
        self.live_interval = every.max(Duration::from_millis(10));
        self
    }
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (not recursively, hidden
/// files skipped, by name). A file that does not load is kept in
/// [`WorkflowCatalog::problems`] with every problem, so the others still show.
pub fn load_workflow_dir(dir: impl AsRef<Path>) -> Result<WorkflowCatalog, ServeError> {
    let dir = dir.as_ref();
    let io = |source| ServeError::WorkflowsDir {
        dir: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        if yaml && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut catalog = WorkflowCatalog::default();
    for path in files {
        match load_yaml_path(&path) {
            Ok(def) => catalog.workflows.push(def),
            Err(errors) => catalog.problems.push((
                path.display().to_string(),
                errors.issues().iter().map(|i| i.to_string()).collect(),
            )),
        }
    }
    Ok(catalog)
}

/// Checks `addr` with [`check_bind`] and binds it.
pub async fn bind(addr: SocketAddr, token: Option<&str>) -> Result<TcpListener, ServeError> {
    check_bind(addr, token)?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// The web application: its router and the CSRF token its pages embed.
#[derive(Clone)]
pub struct Server {
    router: Router,
    csrf_token: String,
    state: Arc<AppState>,
    resume_orphans: Option<Duration>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// Builds the application with a fresh random CSRF token.
    pub fn new(options: ServeOptions) -> Result<Self, ServeError> {
        let csrf = security::random_token()?;
        let (stopping, _) = tokio::sync::watch::channel(false);
        let state = Arc::new(AppState {
            stores: options.stores,
            catalog: options.catalog,
            registry: options.registry,
            app_data: options.app_data,
            tasks: options.tasks,
            messages: options.messages,
            csrf: csrf.clone(),
            restrict_host: options.token.is_none(),
            auth_token: options.token,
            live_interval: options.live_interval,
            run_lease: options.run_lease,
            resumes: Default::default(),
            resume_errors: Default::default(),
            stopping,
        });
        Ok(Self {
            router: routes(state.clone()),
            csrf_token: csrf,
            state,
            resume_orphans: options.resume_orphans,
        })
    }

    /// The router (for serving, or for tests with `tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The CSRF token mutating requests must carry (also embedded in every page).
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }

    /// Serves on `listener` until `shutdown` completes. Then live streams
    /// end, runs resumed by this server are cancelled (their state is kept,
    /// they can be resumed again) and open requests finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            router,
            state,
            resume_orphans,
            ..
        } = self;
        if let Some(every) = resume_orphans {
            tokio::spawn(take_over_orphans(state.clone(), every));
        }
        let stopped = async move {
            shutdown.await;
            state.stopping.send_replace(true);
            state.resumes.stop_all().await;
        };
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped)
            .await
            .map_err(ServeError::Serve)
    }
}

/// Every `every` until the server stops: resumes each orphaned run here.
async fn take_over_orphans(state: Arc<AppState>, every: Duration) {
    let mut stopping = state.stopping.subscribe();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
        let orphans = match dagger_coord::orphaned_runs(&state.stores).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list orphaned runs");
                continue;
            }
        };
        for run in orphans {
            let id = run.run_id.as_str();
            if state.is_resuming(id) {
                continue;
            }
            match actions::resume(&state, id).await {
                Ok(()) => tracing::info!(run_id = id, "taking over an orphaned run"),
                Err(e) => {
                    tracing::warn!(run_id = id, error = %e, "cannot take over an orphaned run")
                }
            }
        }
    }
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// One span per request and one event per response (method, path,
/// status, latency), at info level.
fn request_log() -> tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
> {
    use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
    TraceLayer::new_for_http()
        .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
}

fn routes(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/csrf", get(api::csrf))
        .route("/runs", get(api::runs))
        .route("/runs/{id}", get(api::run))
        .route("/runs/{id}/events", get(live::run_events))
        .route("/runs/{id}/dot", get(api::run_dot))
        .route("/runs/{id}/graph.svg", get(api::run_svg))
        .route("/runs/{id}/nodes/{node}/output", get(api::node_output))
        .route("/runs/{id}/nodes/{node}/attempts", get(logs::api_attempts))
        .route("/runs/{id}/cancel", post(api::cancel))
        .route("/runs/{id}/resume", post(api::resume))
        .route("/runs/{id}/approve", post(api::approve))
        .route("/runs/{id}/reject", post(api::reject))
        .route("/runs/{id}/signals/{name}", post(api::signal))
        .route("/jobs", get(jobs::api_list))
        .route("/jobs/{id}", get(jobs::api_job))
        .route("/channels", get(channels::api_list))
        .route("/channels/{name}", get(channels::api_channel))
        .route("/workflows", get(api::workflows))
        .route("/workflows/{name}", get(api::workflow))
        .route("/workflows/{name}/runs", post(start::api_start))
        .route("/workflows/{name}/dot", get(api::workflow_dot))
        .route("/workflows/{name}/graph.svg", get(api::workflow_svg))
        .fallback(api::not_found);
    Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/runs", get(web::runs))
        .route("/runs/{id}", get(web::run))
        .route("/runs/{id}/cancel", post(web::cancel))
        .route("/runs/{id}/resume", post(web::resume))
        .route("/runs/{id}/approve", post(web::approve))
        .route("/runs/{id}/reject", post(web::reject))
        .route("/workflows", get(web::workflows))
        .route("/workflows/{name}", get(web::workflow))
        .route("/workflows/{name}/start", post(start::page_start))
        .route("/jobs", get(jobs::page_list))
        .route("/jobs/{id}", get(jobs::page_job))
        .route("/channels", get(channels::page_list))
        .route("/channels/{name}", get(channels::page_channel))
        .route("/login", get(web::login_page).post(web::login))
        .route("/assets/style.css", get(assets::style))
        .route("/assets/app.js", get(assets::script))
        .nest("/api", api)
        .merge(ops::ops_router(state.stores.clone()))
        .fallback(web::not_found)
        .layer(request_log())
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::loopback_host_only,
        ))
        .with_state(state)
}

//! Errors of the web server and of its request handlers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dagger_coord::CoordError;
use dagger_core::StoreError;
use std::net::SocketAddr;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is reachable from other machines and no token protects mutations.
    #[error(
        "refusing to listen on {addr} without a token: it is reachable beyond this machine; \
         pass --token (or set DAGGER_SERVE_TOKEN), or listen on a loopback address such as 127.0.0.1"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The token is empty or too short to protect anything.
    #[error("the token must be at least {min} characters long (got {len})")]
    WeakToken {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The token holds a character a cookie or header cannot carry.
    #[error("the token may hold only visible ASCII characters other than `;`, `,`, `\"` and `\\`")]
    TokenCharacters,
    /// Binding or serving the socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Serving failed after the socket was bound.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The operating system's random source failed (for the CSRF token).
    #[error("cannot draw a random CSRF token: {0}")]
    Random(String),
    /// The workflows directory cannot be read.
    #[error("cannot read workflows directory `{dir}`: {source}")]
    WorkflowsDir {
        /// The directory.
        dir: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a request failed; each variant maps to an HTTP status, and the body
/// names the culprit (as JSON under `/api/`, as an HTML page elsewhere).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No run has this id.
    #[error("run `{0}` not found")]
    RunNotFound(String),
    /// The run has no node with this id.
    #[error("run `{run_id}` has no node `{node_id}`")]
    NodeNotFound {
        /// The run.
        run_id: String,
        /// The node asked for.
        node_id: String,
    },
    /// No job has this id.
    #[error("job `{0}` not found")]
    JobNotFound(String),
    /// This server was started without the store this page needs.
    #[error("this server has no {0} store")]
    NoStore(&'static str),
    /// No loaded workflow has this name.
    #[error("workflow `{0}` not found")]
    WorkflowNotFound(String),
    /// No page or API route has this path.
    #[error("no such page or API route: `{0}`")]
    NoRoute(String),
    /// A query or form value is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The CSRF token is missing or wrong.
    #[error("missing or wrong CSRF token; reload the page and try again")]
    Csrf,
    /// The server has a token and the request did not carry it.
    #[error(
        "this server requires its token for changes: send `Authorization: Bearer <token>` or log in at /login"
    )]
    Unauthorized,
    /// The request conflicts with the run's state (resume of a running run...).
    #[error("{0}")]
    Conflict(String),
    /// A background read failed to finish (its task panicked or was cancelled).
    #[error("internal error: {0}")]
    Internal(String),
    /// The coordinator refused or failed.
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RequestError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RunNotFound(_)
            | Self::NodeNotFound { .. }
            | Self::WorkflowNotFound(_)
            | Self::JobNotFound(_)
            | Self::NoStore(_)
            | Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Csrf | Self::Unauthorized => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Coord(CoordError::RunNotFound(_) | CoordError::NodeNotFound { .. }) => {
                StatusCode::NOT_FOUND
            }
            Self::Coord(
                CoordError::AlreadyFinished { .. }
                | CoordError::RunEnded { .. }
                | CoordError::NotWaiting { .. }
                | CoordError::AlreadyDecided { .. }
                | CoordError::NoSignalWait { .. },
            ) => StatusCode::CONFLICT,
            Self::Coord(CoordError::SignalRejected { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            // A store on read-only media serves its pages; changes cannot be
            // made through this server at all.
            Self::Coord(CoordError::Store(StoreError::ReadOnly { .. }))
            | Self::Store(StoreError::ReadOnly { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Coord(_) | Self::Store(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// A [`RequestError`] answered as JSON: `{"error": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) RequestError);

impl<E: Into<RequestError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.0.to_string() });
        (self.0.status(), axum::Json(body)).into_response()
    }
}

/// A [`RequestError`] answered as an HTML page.
#[derive(Debug)]
pub(crate) struct PageError(pub(crate) RequestError);

impl<E: Into<RequestError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let page = crate::pages::error_page(status, &self.0.to_string());
        (status, page).into_response()
    }
}

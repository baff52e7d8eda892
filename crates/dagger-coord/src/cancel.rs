//! How a run is told to stop from inside its process.
//!
//! One cancellation type serves DAG runs, task jobs and pub/sub:
//! `tokio_util::sync::CancellationToken`. A run takes a [`RunCancel`], built
//! from a token (the primary form, also what [`crate::RunHandle::cancel`]
//! fires, with a reason) or from the seed form, a `oneshot::Receiver<()>`
//! whose sender sends (dropping the sender cancels nothing).

use std::sync::{Arc, OnceLock};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The reason a run records when it is cancelled without one.
const DEFAULT_REASON: &str = "run cancelled";

/// What cancels a run: a [`CancellationToken`] or, in the seed form, a
/// `oneshot::Receiver<()>`. Both convert into it, so
/// [`crate::Coordinator::run_parallel`], `resume` and `rerun` accept either:
///
/// ```
/// # use dagger_coord::RunCancel;
/// let token = tokio_util::sync::CancellationToken::new();
/// let _: RunCancel = token.child_token().into();
/// let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
/// let _: RunCancel = rx.into();
/// ```
#[derive(Debug, Default)]
pub struct RunCancel {
    kind: Kind,
}

#[derive(Debug, Default)]
enum Kind {
    /// Nothing cancels the run from inside the process.
    #[default]
    Never,
    /// Sending on the sender cancels; dropping it does not.
    Oneshot(oneshot::Receiver<()>),
    /// Cancelling the token cancels; `reason` holds why, when given.
    Token(CancellationToken, Arc<OnceLock<String>>),
}

impl RunCancel {
    /// A run nothing inside the process cancels (a store-side request,
    /// [`crate::request_cancel`], still does).
    pub fn never() -> Self {
        Self::default()
    }

    /// Cancelled when `token` is; `reason` is what the run records then
    /// (`run cancelled: <reason>`), if it was set before.
    pub(crate) fn with_reason(token: CancellationToken, reason: Arc<OnceLock<String>>) -> Self {
        Self {
            kind: Kind::Token(token, reason),
        }
    }

    /// Resolves once the run is to be cancelled, with the reason it records;
    /// never resolves when nothing can cancel it any more.
    pub(crate) async fn fired(&mut self) -> String {
        match &mut self.kind {
            Kind::Never => std::future::pending().await,
            Kind::Oneshot(rx) => match rx.await {
                Ok(()) => DEFAULT_REASON.to_string(),
                Err(_) => {
                    self.kind = Kind::Never;
                    std::future::pending().await
                }
            },
            Kind::Token(token, reason) => {
                token.cancelled().await;
                match reason.get() {
                    Some(r) => format!("{DEFAULT_REASON}: {r}"),
                    None => DEFAULT_REASON.to_string(),
                }
            }
        }
    }
}

impl From<CancellationToken> for RunCancel {
    fn from(token: CancellationToken) -> Self {
        Self::with_reason(token, Arc::default())
    }
}

impl From<oneshot::Receiver<()>> for RunCancel {
    fn from(rx: oneshot::Receiver<()>) -> Self {
        Self {
            kind: Kind::Oneshot(rx),
        }
    }
}

//! One way to contain a panic inside a unit of work (a DAG action, a task
//! agent, a pub/sub handler, a hook): the panic becomes a value naming its
//! message, so the attempt fails instead of the worker or the run hanging.

use futures_util::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// A panic caught while polling a unit of work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panicked: {message}")]
pub struct Panicked {
    /// The panic's message (`"non-string panic payload"` when it carried no text).
    pub message: String,
}

impl Panicked {
    /// The message of a payload from `std::panic::catch_unwind`.
    pub fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        Self { message }
    }
}

/// Polls `work` to completion, turning a panic in any of its polls into
/// [`Panicked`].
///
/// The work is treated as unwind-safe: whatever it shared with others is
/// either dropped with it or guarded by locks that do not poison
/// (`parking_lot`), and the caller records the attempt as failed.
///
/// A plain function returning the future (not an `async fn`): an `async fn`
/// would keep `work` twice in its state (the argument and the future it is
/// moved into), doubling the size of every task that awaits it.
pub fn catch_panic<F: Future>(work: F) -> impl Future<Output = Result<F::Output, Panicked>> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .map(|r| r.map_err(|payload| Panicked::from_payload(payload.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        let r = catch_panic(async { panic!("boom {}", 7) }).await;
        assert_eq!(
            r,
            Err(Panicked {
                message: "boom 7".into()
            })
        );
        assert_eq!(r.unwrap_err().to_string(), "panicked: boom 7");
        let s: Result<(), Panicked> = catch_panic(async { std::panic::panic_any(3_u8) }).await;
        assert_eq!(s.unwrap_err().message, "non-string panic payload");
    }

    #[tokio::test]
    async fn a_value_passes_through() {
        assert_eq!(catch_panic(async { 5 }).await, Ok(5));
    }
}

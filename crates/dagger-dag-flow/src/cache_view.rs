//! An action's read access to its run's cache (`ctx.cache`).

use crate::error::CacheUnavailable;
use dagger_core::Cache;
use serde_json::Value;
use std::sync::Arc;

/// What an action sees of its run's cache: every node's outputs and the
/// run's inputs, read-only. An action's own outputs go in its
/// [`crate::NodeOutput`]; what a node needs from upstream is best declared
/// as an input (`ctx.inputs`), which works wherever the node runs.
///
/// Reads are fallible because the cache is not everywhere: an attempt run
/// by a remote worker (`dagger worker`) gets its inputs, not the run's
/// cache, and a read there is an error ([`CacheUnavailable`]) instead of a
/// silent `None`. In an action, `?` propagates it:
///
/// ```
/// # use dagger_dag_flow::NodeCtx;
/// # fn f(ctx: &NodeCtx) -> Result<(), dagger_core::BoxError> {
/// if let Some(previous) = ctx.cache.get("previous_run", "result")? {
///     println!("found {previous}");
/// }
/// # Ok(()) }
/// # f(&NodeCtx::for_test("n", Default::default())).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct CacheView {
    /// `None` where the run's cache is not available.
    cache: Option<Cache>,
}

impl CacheView {
    /// A view of `cache`.
    pub fn new(cache: Cache) -> Self {
        Self { cache: Some(cache) }
    }

    /// A view where the run's cache is not available (an attempt on a
    /// remote worker): every read is [`CacheUnavailable`].
    pub fn unavailable() -> Self {
        Self { cache: None }
    }

    /// Whether reads can succeed here.
    pub fn is_available(&self) -> bool {
        self.cache.is_some()
    }

    /// The value at `namespace`.`key`: `Ok(None)` when there is none,
    /// `Err` when the run's cache is not available to this attempt.
    pub fn get(&self, namespace: &str, key: &str) -> Result<Option<Arc<Value>>, CacheUnavailable> {
        Ok(self.cache()?.get(namespace, key))
    }

    /// The whole cache, read-only, when it is available.
    pub fn cache(&self) -> Result<&Cache, CacheUnavailable> {
        self.cache.as_ref().ok_or(CacheUnavailable)
    }
}

impl From<Cache> for CacheView {
    fn from(cache: Cache) -> Self {
        Self::new(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_cache_it_views() {
        let cache = Cache::new();
        cache.insert("previous_run", "result", json!("done"));
        let view = CacheView::new(cache);
        assert!(view.is_available());
        assert_eq!(
            view.get("previous_run", "result").unwrap().as_deref(),
            Some(&json!("done"))
        );
        assert_eq!(view.get("previous_run", "other").unwrap(), None);
    }

    #[test]
    fn reads_where_the_cache_is_not_are_errors() {
        let view = CacheView::unavailable();
        assert!(!view.is_available());
        let err = view.get("previous_run", "result").unwrap_err();
        assert!(err.to_string().contains("remote worker"), "{err}");
        assert!(view.cache().is_err());
    }
}

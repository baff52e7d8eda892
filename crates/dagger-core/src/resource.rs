//! Limits shared by every run and job that holds the same [`ResourceTracker`]:
//! how many actions run at once, and a resident-memory ceiling above which
//! nothing new starts until memory falls.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How often a start blocked by the memory limit re-reads resident memory.
/// (Memory has no event to wait on; this wait happens only above the limit.)
const MEMORY_RECHECK: Duration = Duration::from_millis(20);

type RssProbe = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// Shared concurrency and memory limits. Cheap to clone.
#[derive(Clone)]
pub struct ResourceTracker {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    slot_freed: Notify,
    memory_limit: AtomicU64,
    memory_waits: AtomicU64,
    probe: RssProbe,
}

#[derive(Default)]
struct State {
    task_limit: Option<usize>,
    active: usize,
    peak_active: usize,
}

/// What a tracker has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceMetrics {
    /// Actions holding a permit now.
    pub active: usize,
    /// Most actions that held permits at once.
    pub peak_active: usize,
    /// The concurrency limit, if any.
    pub task_limit: Option<usize>,
    /// The memory limit in bytes, if any.
    pub memory_limit: Option<u64>,
    /// Starts that had to wait for memory to fall below the limit.
    pub memory_waits: u64,
    /// Resident memory of the process now, when it can be read.
    pub resident_bytes: Option<u64>,
}

impl std::fmt::Debug for ResourceTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceTracker")
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl Default for ResourceTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ResourceTracker {
    /// A tracker with no limits, measuring this process's resident memory.
    pub fn new() -> Self {
        Self::with_rss_probe(Arc::new(resident_bytes))
    }

    /// A tracker reading resident memory through `probe` (tests simulate memory with it).
    pub fn with_rss_probe(probe: Arc<dyn Fn() -> Option<u64> + Send + Sync>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                slot_freed: Notify::new(),
                memory_limit: AtomicU64::new(0),
                memory_waits: AtomicU64::new(0),
                probe,
            }),
        }
    }

    /// No new action starts while resident memory is above `bytes` (`None`: no limit);
    /// `set_memory_limit(1_000_000_000)` and `set_memory_limit(Some(..))` both read.
    pub fn set_memory_limit(&self, bytes: impl Into<Option<u64>>) {
        self.inner
            .memory_limit
            .store(bytes.into().unwrap_or(0), Ordering::Relaxed);
    }

    /// At most `n` actions at once across everything sharing this tracker (`None`: no limit).
    pub fn set_task_limit(&self, n: impl Into<Option<usize>>) {
        self.inner.state.lock().task_limit = n.into().map(|n| n.max(1));
        self.inner.slot_freed.notify_waiters();
    }

    /// Waits until memory is under the limit and a slot is free, then holds the slot.
    pub async fn acquire(&self) -> ResourcePermit {
        let mut waited_for_memory = false;
        loop {
            let limit = self.inner.memory_limit.load(Ordering::Relaxed);
            if limit > 0 && (self.inner.probe)().is_some_and(|rss| rss > limit) {
                if !waited_for_memory {
                    waited_for_memory = true;
                    self.inner.memory_waits.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(MEMORY_RECHECK).await;
                continue;
            }
            let notified = self.inner.slot_freed.notified();
            {
                let mut st = self.inner.state.lock();
                if st.task_limit.is_none_or(|l| st.active < l) {
                    st.active += 1;
                    st.peak_active = st.peak_active.max(st.active);
                    return ResourcePermit {
                        tracker: self.clone(),
                    };
                }
            }
            notified.await;
        }
    }

    /// Current figures.
    pub fn metrics(&self) -> ResourceMetrics {
        let st = self.inner.state.lock();
        let limit = self.inner.memory_limit.load(Ordering::Relaxed);
        ResourceMetrics {
            active: st.active,
            peak_active: st.peak_active,
            task_limit: st.task_limit,
            memory_limit: (limit > 0).then_some(limit),
            memory_waits: self.inner.memory_waits.load(Ordering::Relaxed),
            resident_bytes: (self.inner.probe)(),
        }
    }
}

/// A held slot; dropping it frees the slot.
pub struct ResourcePermit {
    tracker: ResourceTracker,
}

impl std::fmt::Debug for ResourcePermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResourcePermit")
    }
}

impl Drop for ResourcePermit {
    fn drop(&mut self) {
        self.tracker.inner.state.lock().active -= 1;
        self.tracker.inner.slot_freed.notify_one();
    }
}

/// Resident memory of this process from `/proc/self/statm` (Linux); `None` elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn task_limit_bounds_concurrency_across_holders() {
        let t = ResourceTracker::new();
        t.set_task_limit(Some(2));
        let live = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..8 {
            let (t, live, max) = (t.clone(), live.clone(), max.clone());
            handles.push(tokio::spawn(async move {
                let _p = t.acquire().await;
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                live.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(max.load(Ordering::SeqCst), 2);
        assert_eq!(t.metrics().peak_active, 2);
        assert_eq!(t.metrics().active, 0);
    }

    #[tokio::test]
    async fn memory_above_the_limit_holds_starts_until_it_falls() {
        let rss = Arc::new(AtomicU64::new(500));
        let probe_rss = rss.clone();
        let t = ResourceTracker::with_rss_probe(Arc::new(move || {
            Some(probe_rss.load(Ordering::SeqCst))
        }));
        t.set_memory_limit(Some(100));
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let t2 = t.clone();
        let h = tokio::spawn(async move {
            let _p = t2.acquire().await;
            s.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            started.load(Ordering::SeqCst),
            0,
            "held while memory is above the limit"
        );
        rss.store(50, Ordering::SeqCst);
        h.await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(t.metrics().memory_waits, 1);
    }

    #[test]
    fn reads_this_process_memory() {
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }
}

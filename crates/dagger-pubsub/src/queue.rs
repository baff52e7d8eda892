//! The bounded per-subscriber queue: one consumer (the agent's worker), many
//! producers. A full queue either makes producers wait (backpressure) or drops
//! its oldest message, counting the drop.

use crate::config::Overflow;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Notify;

/// How often a consumer that found its queue empty yields before sleeping.
const IDLE_YIELDS: u32 = 4;

/// Below this many queued items a busy consumer first yields (up to
/// [`SMALL_BATCH_WAITS`] times) so that a running producer can add more.
const SMALL_BATCH: usize = 8;
/// How often a consumer yields for a small batch to grow before taking it.
const SMALL_BATCH_WAITS: u32 = 4;

/// A bounded multi-producer, single-consumer queue with batch receive.
pub(crate) struct BoundedQueue<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    overflow: Overflow,
    /// Wakes the consumer when the queue goes from empty to non-empty (or closes).
    item_ready: Notify,
    /// Wakes waiting producers when a full queue is drained (or closes).
    space_ready: Notify,
    dropped: AtomicU64,
    /// Whether the consumer's last batch was waiting for it (no idle yield,
    /// no sleep): only then does it wait for a small batch to grow, so a
    /// consumer that keeps up with a slow producer adds no latency.
    consumer_busy: AtomicBool,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    high_water: usize,
}

/// The result of a push that did not fail.
pub(crate) enum Pushed<T> {
    /// The item is queued.
    Queued,
    /// The item is queued and this oldest one was dropped to make room.
    DroppedOldest(T),
}

impl<T> BoundedQueue<T> {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.min(4096)),
                closed: false,
                high_water: 0,
            }),
            capacity,
            overflow,
            item_ready: Notify::new(),
            space_ready: Notify::new(),
            dropped: AtomicU64::new(0),
            consumer_busy: AtomicBool::new(false),
        }
    }

    /// Queues `item`, waiting for room when the queue is full and its policy
    /// is [`Overflow::Block`]. `force` skips the bound: used where waiting
    /// could never end (an agent publishing to itself, dead letters). Returns
    /// the item back when the queue is closed.
    pub(crate) async fn push(&self, item: T, force: bool) -> Result<Pushed<T>, T> {
        let item = match self.try_push(item, force) {
            Ok(p) => return Ok(p),
            Err((item, true)) => return Err(item),
            Err((item, false)) => item,
        };
        let notified = self.space_ready.notified();
        tokio::pin!(notified);
        let mut item = item;
        loop {
            // Registered before looking at the state, so a drain between the
            // look and the await still wakes us.
            notified.as_mut().enable();
            match self.try_push(item, false) {
                Ok(p) => return Ok(p),
                Err((back, true)) => return Err(back),
                Err((back, false)) => item = back,
            }
            notified.as_mut().await;
            notified.set(self.space_ready.notified());
        }
    }

    /// Pushes without waiting; `Err((item, closed))` when it cannot.
    pub(crate) fn try_push(&self, item: T, force: bool) -> Result<Pushed<T>, (T, bool)> {
        let mut s = self.state.lock();
        if s.closed {
            return Err((item, true));
        }
        let len = s.items.len();
        if len < self.capacity || force {
            s.items.push_back(item);
            s.high_water = s.high_water.max(len + 1);
            drop(s);
            if len == 0 {
                self.item_ready.notify_one();
            }
            return Ok(Pushed::Queued);
        }
        match self.overflow {
            Overflow::Block => Err((item, false)),
            Overflow::DropOldest => {
                let oldest = s.items.pop_front();
                s.items.push_back(item);
                drop(s);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(oldest.map_or(Pushed::Queued, Pushed::DroppedOldest))
            }
        }
    }

    /// Moves up to `max` items into `out`, waiting while the queue is empty.
    /// Returns false once the queue is closed and empty.
    ///
    /// An empty queue is first looked at again after yielding to the
    /// scheduler a few times: a producer running meanwhile fills it without
    /// having to wake a sleeping consumer, so a busy queue is handed over in
    /// batches (one wake-up per batch, not per message).
    pub(crate) async fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> bool {
        let mut yields = 0;
        let mut slept = false;
        let mut waits_for_more = if self.consumer_busy.load(Ordering::Relaxed) {
            0
        } else {
            SMALL_BATCH_WAITS
        };
        loop {
            let few = {
                let mut s = self.state.lock();
                let len = s.items.len();
                // A few items only: let a running producer add more first.
                // Taking them at once would move the lock's cache line to
                // this core and back once per message (P2 with 4
                // subscribers: 3.3M -> 4.2M deliveries/s on 2 cores); the
                // cost is a few yields of latency, not a sleep.
                // Never a full queue: its producers wait or drop.
                let few = len > 0
                    && len < SMALL_BATCH.min(self.capacity)
                    && waits_for_more < SMALL_BATCH_WAITS
                    && !s.closed;
                if len > 0 && !few {
                    let n = len.min(max);
                    out.extend(s.items.drain(..n));
                    drop(s);
                    self.consumer_busy
                        .store(yields == 0 && !slept, Ordering::Relaxed);
                    if len >= self.capacity {
                        self.space_ready.notify_waiters();
                    }
                    return true;
                }
                if s.closed && len == 0 {
                    return false;
                }
                few
            };
            if few {
                waits_for_more += 1;
                tokio::task::yield_now().await;
                continue;
            }
            if yields < IDLE_YIELDS {
                yields += 1;
                tokio::task::yield_now().await;
                continue;
            }
            // A push into the empty queue after the look above leaves a
            // permit, so this never sleeps past an item.
            self.item_ready.notified().await;
            slept = true;
        }
    }

    /// Refuses further pushes; the consumer still drains what is queued.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.item_ready.notify_one();
        self.space_ready.notify_waiters();
    }

    /// Items queued now.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    /// The most items ever queued at once.
    pub(crate) fn high_water(&self) -> usize {
        self.state.lock().high_water
    }

    /// Items dropped by [`Overflow::DropOldest`].
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_full_blocking_queue_makes_the_producer_wait_until_drained() {
        let q = Arc::new(BoundedQueue::new(2, Overflow::Block));
        assert!(matches!(q.push(1, false).await, Ok(Pushed::Queued)));
        assert!(matches!(q.push(2, false).await, Ok(Pushed::Queued)));
        let q2 = q.clone();
        let producer = tokio::spawn(async move { q2.push(3, false).await.is_ok() });
        tokio::task::yield_now().await;
        assert!(!producer.is_finished(), "third push must wait for room");
        let mut out = Vec::new();
        assert!(q.pop_batch(&mut out, 10).await);
        assert_eq!(out, [1, 2]);
        assert!(producer.await.unwrap());
        out.clear();
        assert!(q.pop_batch(&mut out, 10).await);
        assert_eq!(out, [3]);
        assert_eq!(q.high_water(), 2);
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_counts() {
        let q = BoundedQueue::new(2, Overflow::DropOldest);
        for i in 0..5 {
            let _ = q.push(i, false).await;
        }
        assert_eq!(q.dropped(), 3);
        let mut out = Vec::new();
        q.pop_batch(&mut out, 10).await;
        assert_eq!(out, [3, 4]);
    }

    #[tokio::test]
    async fn close_lets_the_consumer_drain_then_stop_and_refuses_pushes() {
        let q = BoundedQueue::new(4, Overflow::Block);
        let _ = q.push(1, false).await;
        q.close();
        assert!(matches!(q.push(2, false).await, Err(2)));
        let mut out = Vec::new();
        assert!(q.pop_batch(&mut out, 10).await);
        assert_eq!(out, [1]);
        assert!(!q.pop_batch(&mut out, 10).await);
    }

    #[tokio::test]
    async fn forced_pushes_exceed_the_bound() {
        let q = BoundedQueue::new(1, Overflow::Block);
        let _ = q.push(1, false).await;
        assert!(matches!(q.push(2, true).await, Ok(Pushed::Queued)));
        assert_eq!(q.len(), 2);
    }
}

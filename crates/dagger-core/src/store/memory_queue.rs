//! [`MemoryNodeQueue`]: the node work queue in one process (tests, and a
//! coordinator feeding in-process [`NodeQueue`] workers).

use super::queue::{NodeClaim, NodeQueue, NodeResult, NodeWorkItem};
use crate::error::StoreError;
use crate::now_millis;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Where an item is.
enum State {
    Queued,
    Claimed { lease_expires_at: i64 },
    Done(NodeResult),
}

struct Entry {
    item: NodeWorkItem,
    seq: u64,
    token: u64,
    state: State,
}

#[derive(Default)]
struct Items {
    by_id: HashMap<String, Entry>,
    next_seq: u64,
}

/// A [`NodeQueue`] in memory. Cheap to clone: clones share the queue.
#[derive(Clone)]
pub struct MemoryNodeQueue {
    items: Arc<Mutex<Items>>,
    work: Arc<watch::Sender<u64>>,
    /// Woken on every completion and cancel; waiters re-check their item.
    done: Arc<Notify>,
}

impl Default for MemoryNodeQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryNodeQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNodeQueue")
            .field("items", &self.items.lock().by_id.len())
            .finish()
    }
}

impl MemoryNodeQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            items: Arc::default(),
            work: Arc::new(watch::Sender::new(0)),
            done: Arc::new(Notify::new()),
        }
    }

    /// Items not yet taken by [`NodeQueue::wait_result`] (finished or not).
    pub fn len(&self) -> usize {
        self.items.lock().by_id.len()
    }

    /// Whether the queue holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// The typed rejection of a renewal or completion that does not hold `token`.
fn check_token(entry: Option<&Entry>, item_id: &str, token: u64) -> Result<(), StoreError> {
    let Some(e) = entry else {
        return Err(StoreError::NotFound {
            entity: "node work item",
            id: item_id.to_string(),
        });
    };
    match e.state {
        State::Claimed { .. } if e.token == token => Ok(()),
        _ => Err(StoreError::StaleToken {
            entity: "node work item",
            id: item_id.to_string(),
            held: token,
            current: e.token,
        }),
    }
}

#[async_trait::async_trait]
impl NodeQueue for MemoryNodeQueue {
    async fn enqueue(&self, item: NodeWorkItem) -> Result<(), StoreError> {
        {
            let mut items = self.items.lock();
            items.next_seq += 1;
            let seq = items.next_seq;
            let token = items.by_id.get(&item.item_id).map_or(0, |e| e.token);
            items.by_id.insert(
                item.item_id.clone(),
                Entry {
                    item,
                    seq,
                    token,
                    state: State::Queued,
                },
            );
        }
        self.work.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    async fn claim(
        &self,
        worker: &str,
        actions: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<NodeClaim>, StoreError> {
        let _ = worker;
        let now = now_millis();
        let mut items = self.items.lock();
        let mut open: Vec<&mut Entry> = items
            .by_id
            .values_mut()
            .filter(|e| match e.state {
                State::Queued => true,
                State::Claimed { lease_expires_at } => lease_expires_at <= now,
                State::Done(_) => false,
            })
            .filter(|e| actions.contains(&e.item.action))
            .collect();
        open.sort_by_key(|e| e.seq);
        let expires = now.saturating_add(lease_ms(lease));
        let expired = open
            .iter()
            .take(limit)
            .filter(|e| matches!(e.state, State::Claimed { .. }))
            .count();
        crate::metrics::lease_expiries("nodes", expired as u64);
        Ok(open
            .into_iter()
            .take(limit)
            .map(|e| {
                e.token += 1;
                e.state = State::Claimed {
                    lease_expires_at: expires,
                };
                NodeClaim {
                    item: e.item.clone(),
                    token: e.token,
                    lease_expires_at: expires,
                }
            })
            .collect())
    }

    async fn renew(&self, item_id: &str, token: u64, lease: Duration) -> Result<i64, StoreError> {
        let mut items = self.items.lock();
        let entry = items.by_id.get_mut(item_id);
        check_token(entry.as_deref(), item_id, token)?;
        let expires = now_millis().saturating_add(lease_ms(lease));
        if let Some(e) = entry {
            e.state = State::Claimed {
                lease_expires_at: expires,
            };
        }
        Ok(expires)
    }

    async fn complete(
        &self,
        item_id: &str,
        token: u64,
        result: NodeResult,
    ) -> Result<(), StoreError> {
        {
            let mut items = self.items.lock();
            let entry = items.by_id.get_mut(item_id);
            check_token(entry.as_deref(), item_id, token)?;
            if let Some(e) = entry {
                e.state = State::Done(result);
            }
        }
        self.done.notify_waiters();
        Ok(())
    }

    async fn cancel(&self, item_id: &str) -> Result<(), StoreError> {
        self.items.lock().by_id.remove(item_id);
        self.done.notify_waiters();
        Ok(())
    }

    async fn cancel_run(&self, run_id: &str) -> Result<u64, StoreError> {
        let withdrawn = {
            let mut items = self.items.lock();
            let before = items.by_id.len();
            items.by_id.retain(|_, e| e.item.run_id.as_str() != run_id);
            before - items.by_id.len()
        };
        if withdrawn > 0 {
            self.done.notify_waiters();
        }
        Ok(withdrawn as u64)
    }

    async fn wait_result(&self, item_id: &str) -> Result<NodeResult, StoreError> {
        loop {
            // Registered before the check, so a completion in between is not missed.
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut items = self.items.lock();
                match items.by_id.get(item_id).map(|e| &e.state) {
                    None => {
                        return Err(StoreError::NotFound {
                            entity: "node work item",
                            id: item_id.to_string(),
                        });
                    }
                    Some(State::Done(_)) => {
                        if let Some(Entry {
                            state: State::Done(r),
                            ..
                        }) = items.by_id.remove(item_id)
                        {
                            return Ok(r);
                        }
                    }
                    Some(_) => {}
                }
            }
            notified.await;
        }
    }

    fn work_signal(&self) -> watch::Receiver<u64> {
        self.work.subscribe()
    }

    fn location(&self) -> String {
        "memory".to_string()
    }
}

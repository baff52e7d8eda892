//! The concurrent cache where node outputs and run inputs live:
//! namespace -> key -> value, with values shared through `Arc` so reads never
//! copy them.

use crate::error::CacheError;
use dashmap::DashMap;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One input of a node: a name and either a reference into the cache or a literal value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The input's name, as the action reads it.
    pub name: String,
    /// What the input is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `inputs.<key>` (a run input) or `<node_id>.<output>` (another node's output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A literal value of any type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl InputSpec {
    /// An input read through a reference.
    pub fn reference(name: impl Into<String>, reference: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reference: Some(reference.into()),
            ..Self::default()
        }
    }

    /// An input with a literal value.
    pub fn literal(name: impl Into<String>, value: Value) -> Self {
        Self {
            name: name.into(),
            value: Some(value),
            ..Self::default()
        }
    }

    /// Splits a reference into `(namespace, key)`: `inputs.k` -> `("inputs", "k")`,
    /// `node.out` -> `("node", "out")`. The split is at the first dot; `None`
    /// when either side is empty.
    pub fn split_reference(reference: &str) -> Option<(&str, &str)> {
        let (ns, key) = reference.split_once('.')?;
        (!ns.is_empty() && !key.is_empty()).then_some((ns, key))
    }
}

/// Which entry leaves a bounded cache first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvictionPolicy {
    /// Least recently read or written.
    #[default]
    Lru,
    /// Least recently written (reads do not refresh).
    Fifo,
}

#[allow(non_upper_case_globals)]
impl EvictionPolicy {
    /// [`EvictionPolicy::Lru`], as the original README spells it.
    pub const LRU: Self = Self::Lru;
    /// [`EvictionPolicy::Fifo`], spelled like [`EvictionPolicy::LRU`].
    pub const FIFO: Self = Self::Fifo;
}

/// Bounds of a [`Cache`]; a bound of 0 is no bound. With neither bound set,
/// the cache is unbounded and pays nothing for bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    /// At most this many values (0: no bound).
    pub max_entries: usize,
    /// At most about this many MiB of values, estimated from their JSON size
    /// (0: no bound).
    pub max_memory_mb: usize,
    /// Which value to drop first when a bound is hit.
    pub eviction_policy: EvictionPolicy,
}

type Key = (Arc<str>, Arc<str>);

struct Bounds {
    max_entries: usize,
    max_bytes: u64,
    policy: EvictionPolicy,
    index: Mutex<lru::LruCache<Key, u64>>,
    bytes: AtomicU64,
}

/// A concurrent namespace -> key -> value map.
#[derive(Clone, Default)]
pub struct Cache {
    inner: Arc<CacheInner>,
}

/// Builds the hashers of maps keyed by names (node ids, namespaces):
/// `foldhash`'s fast hash, a few instructions per word where SipHash showed
/// up in profiles of runs that write one namespace per node. Seeded per
/// process, it resists only casual hash flooding; names come from the
/// workflow itself, not from untrusted input.
pub type Names = foldhash::fast::RandomState;

/// The values of one namespace. A node's output has a handful of keys, so
/// a short vector searched in order is cheaper to build and to read than a
/// map; a namespace that grows past [`FEW`] keys becomes a map.
enum Entries {
    /// Inline while it holds one value (a node's usual output): a new
    /// namespace allocates no list.
    Few(smallvec::SmallVec<[(Arc<str>, Arc<Value>); 1]>),
    Many(HashMap<Arc<str>, Arc<Value>, Names>),
}

/// Keys up to which a namespace stays a vector.
const FEW: usize = 16;

impl Default for Entries {
    fn default() -> Self {
        Entries::Few(smallvec::SmallVec::new())
    }
}

impl Entries {
    fn with_capacity(n: usize) -> Self {
        if n > FEW {
            Entries::Many(HashMap::with_capacity_and_hasher(n, Names::default()))
        } else {
            Entries::Few(smallvec::SmallVec::with_capacity(n))
        }
    }

    fn get(&self, key: &str) -> Option<&Arc<Value>> {
        match self {
            Entries::Few(v) => v.iter().find(|(k, _)| &**k == key).map(|(_, v)| v),
            Entries::Many(m) => m.get(key),
        }
    }

    fn insert(&mut self, key: Arc<str>, value: Arc<Value>) {
        match self {
            Entries::Few(v) => {
                if let Some(slot) = v.iter_mut().find(|(k, _)| *k == key) {
                    slot.1 = value;
                } else if v.len() < FEW {
                    v.push((key, value));
                } else {
                    let mut m: HashMap<_, _, Names> = std::mem::take(v).into_iter().collect();
                    m.insert(key, value);
                    *self = Entries::Many(m);
                }
            }
            Entries::Many(m) => {
                m.insert(key, value);
            }
        }
    }

    fn remove(&mut self, key: &str) {
        match self {
            Entries::Few(v) => v.retain(|(k, _)| &**k != key),
            Entries::Many(m) => {
                m.remove(key);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Entries::Few(v) => v.len(),
            Entries::Many(m) => m.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&Arc<str>, &Arc<Value>)> + '_> {
        match self {
            Entries::Few(v) => Box::new(v.iter().map(|(k, v)| (k, v))),
            Entries::Many(m) => Box::new(m.iter()),
        }
    }
}

#[derive(Default)]
struct CacheInner {
    data: DashMap<Arc<str>, Entries, Names>,
    bounds: Option<Bounds>,
    evictions: AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("namespaces", &self.inner.data.len())
            .finish()
    }
}

impl Cache {
    /// An empty, unbounded cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache with bounds; errors when `max_memory_mb` is more bytes
    /// than a `u64` counts.
    pub fn with_config(config: CacheConfig) -> Result<Self, CacheError> {
        let max_bytes = match config.max_memory_mb {
            0 => u64::MAX,
            mb => u64::try_from(mb)
                .ok()
                .and_then(|mb| mb.checked_mul(1024 * 1024))
                .ok_or_else(|| {
                    CacheError::InvalidConfig(format!("max_memory_mb {mb} is too large"))
                })?,
        };
        if config.max_entries == 0 && config.max_memory_mb == 0 {
            return Ok(Self::new());
        }
        let bounds = Bounds {
            max_entries: match config.max_entries {
                0 => usize::MAX,
                n => n,
            },
            max_bytes,
            policy: config.eviction_policy,
            index: Mutex::new(lru::LruCache::unbounded()),
            bytes: AtomicU64::new(0),
        };
        Ok(Self {
            inner: Arc::new(CacheInner {
                data: DashMap::default(),
                bounds: Some(bounds),
                evictions: AtomicU64::new(0),
            }),
        })
    }

    /// Stores an already shared value.
    pub fn insert_arc(&self, namespace: &str, key: &str, value: Arc<Value>) {
        self.insert_in(NsName::Str(namespace), key, value);
    }

    /// Stores `value` at `namespace.key`; the namespace's name is copied
    /// only when the namespace is new and the caller has no shared copy.
    fn insert_in(&self, namespace: NsName<'_>, key: &str, value: Arc<Value>) {
        let k: Arc<str> = shared_name(key);
        let size = self.inner.bounds.as_ref().map(|_| estimate_size(&value));
        let existing = self.inner.data.get_mut(namespace.as_str());
        let ns = match existing {
            Some(mut entries) => {
                let ns = size.is_some().then(|| entries.key().clone());
                entries.insert(k.clone(), value);
                ns
            }
            None => {
                let ns = namespace.shared();
                self.inner
                    .data
                    .entry(ns.clone())
                    .or_default()
                    .insert(k.clone(), value);
                Some(ns)
            }
        };
        if let (Some(b), Some(size), Some(ns)) = (&self.inner.bounds, size, ns) {
            self.account_insert(b, (ns, k), size);
        }
    }

    /// Stores a JSON value.
    pub fn insert(&self, namespace: &str, key: &str, value: Value) {
        self.insert_arc(namespace, key, Arc::new(value));
    }

    /// Stores every entry of a JSON object under `namespace`; a non-object is stored under `key` `"value"`.
    pub fn insert_object(&self, namespace: &str, value: &Value) {
        self.insert_object_in(NsName::Str(namespace), value);
    }

    /// Like [`Cache::insert_object`], with the namespace's name already
    /// shared: a new namespace keeps `namespace` instead of a copy of it.
    pub fn insert_object_shared(&self, namespace: &Arc<str>, value: &Value) {
        self.insert_object_in(NsName::Shared(namespace), value);
    }

    fn insert_object_in(&self, namespace: NsName<'_>, value: &Value) {
        let Value::Object(map) = value else {
            return self.insert_in(namespace, "value", Arc::new(value.clone()));
        };
        // A fresh namespace (the usual case: one per node) is built whole
        // and inserted under one lock. A shared name costs nothing to pass
        // to `entry`; a borrowed one is copied only for a new namespace.
        if self.inner.bounds.is_none()
            && (matches!(namespace, NsName::Shared(_))
                || !self.inner.data.contains_key(namespace.as_str()))
        {
            match self.inner.data.entry(namespace.shared()) {
                dashmap::Entry::Vacant(slot) => {
                    let mut entries = Entries::with_capacity(map.len());
                    for (k, v) in map {
                        entries.insert(shared_name(k), Arc::new(v.clone()));
                    }
                    slot.insert(entries);
                }
                dashmap::Entry::Occupied(mut slot) => {
                    for (k, v) in map {
                        slot.get_mut().insert(shared_name(k), Arc::new(v.clone()));
                    }
                }
            }
            return;
        }
        for (k, v) in map {
            self.insert_in(namespace, k, Arc::new(v.clone()));
        }
    }

    fn account_insert(&self, b: &Bounds, key: Key, size: u64) {
        let mut index = b.index.lock();
        if let Some(old) = index.put(key.clone(), size) {
            b.bytes.fetch_sub(old, Ordering::Relaxed);
        }
        b.bytes.fetch_add(size, Ordering::Relaxed);
        while index.len() > b.max_entries
            || (b.bytes.load(Ordering::Relaxed) > b.max_bytes && index.len() > 1)
        {
            let Some(((ns, k), sz)) = index.pop_lru() else {
                break;
            };
            if ns == key.0 && k == key.1 {
                // Never evict what was just written; put it back as most recent.
                index.put((ns, k), sz);
                if index.len() <= 1 {
                    break;
                }
                continue;
            }
            b.bytes.fetch_sub(sz, Ordering::Relaxed);
            self.inner.evictions.fetch_add(1, Ordering::Relaxed);
            let now_empty = self.inner.data.get_mut(&ns).is_some_and(|mut m| {
                m.remove(&k);
                m.is_empty()
            });
            if now_empty {
                self.inner.data.remove_if(&ns, |_, m| m.is_empty());
            }
        }
    }

    /// The shared value at `namespace.key`.
    pub fn get(&self, namespace: &str, key: &str) -> Option<Arc<Value>> {
        let v = self.inner.data.get(namespace)?.get(key).cloned()?;
        if let Some(b) = &self.inner.bounds
            && b.policy == EvictionPolicy::Lru
        {
            let k: Key = (Arc::from(namespace), Arc::from(key));
            b.index.lock().promote(&k);
        }
        Some(v)
    }

    /// Every `key -> value` of a namespace, as a JSON object.
    pub fn namespace(&self, namespace: &str) -> Option<Map<String, Value>> {
        let m = self.inner.data.get(namespace)?;
        Some(
            m.iter()
                .map(|(k, v)| (k.to_string(), (**v).clone()))
                .collect(),
        )
    }

    /// Removes a whole namespace.
    pub fn remove_namespace(&self, namespace: &str) {
        if let Some((_, m)) = self.inner.data.remove(namespace)
            && let Some(b) = &self.inner.bounds
        {
            let mut index = b.index.lock();
            for (k, _) in m.iter() {
                if let Some(sz) = index.pop(&(Arc::from(namespace), k.clone())) {
                    b.bytes.fetch_sub(sz, Ordering::Relaxed);
                }
            }
        }
    }

    /// Number of values stored.
    pub fn len(&self) -> usize {
        self.inner.data.iter().map(|m| m.len()).sum()
    }

    /// True when no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many values a bound has evicted so far.
    pub fn evictions(&self) -> u64 {
        self.inner.evictions.load(Ordering::Relaxed)
    }

    /// Estimated bytes held, when the cache is bounded by memory or entries.
    pub fn estimated_bytes(&self) -> Option<u64> {
        self.inner
            .bounds
            .as_ref()
            .map(|b| b.bytes.load(Ordering::Relaxed))
    }

    /// The whole cache as a JSON object of objects.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for entry in self.inner.data.iter() {
            let inner: Map<String, Value> = entry
                .value()
                .iter()
                .map(|(k, v)| (k.to_string(), (**v).clone()))
                .collect();
            out.insert(entry.key().to_string(), Value::Object(inner));
        }
        Value::Object(out)
    }

    /// Replaces nothing: adds every `namespace -> key -> value` of `json` to this cache.
    pub fn merge_json(&self, json: &Value) -> Result<(), CacheError> {
        let Value::Object(namespaces) = json else {
            return Err(CacheError::MalformedSnapshot(
                "top level is not an object".into(),
            ));
        };
        for (ns, values) in namespaces {
            let Value::Object(values) = values else {
                return Err(CacheError::MalformedSnapshot(format!(
                    "namespace `{ns}` is not an object"
                )));
            };
            for (k, v) in values {
                self.insert(ns, k, v.clone());
            }
        }
        Ok(())
    }

    /// Resolves one input spec to its value: a literal, or the value its
    /// reference points at.
    pub fn resolve_input(&self, input: &InputSpec) -> Result<Arc<Value>, CacheError> {
        if let Some(v) = &input.value {
            return Ok(Arc::new(v.clone()));
        }
        let reference = input.reference.as_deref().unwrap_or_default();
        let (ns, key) =
            InputSpec::split_reference(reference).ok_or_else(|| CacheError::InvalidReference {
                input: input.name.clone(),
                reference: reference.to_string(),
            })?;
        self.get(ns, key).ok_or_else(|| CacheError::MissingValue {
            input: input.name.clone(),
            reference: reference.to_string(),
        })
    }
}

/// Names up to this many bytes are shared by [`shared_name`].
const SHARED_NAME_MAX: usize = 32;
/// Names [`shared_name`] remembers per thread.
const SHARED_NAMES: usize = 8;

thread_local! {
    /// The names `shared_name` handed out last on this thread, and the slot to replace next.
    static NAMES: std::cell::RefCell<(Vec<Arc<str>>, usize)> =
        const { std::cell::RefCell::new((Vec::new(), 0)) };
}

/// `name` as a shared string: a short name this thread shared lately
/// (an output key such as `v`, an input name) is handed out again instead
/// of allocated, so a thousand nodes with output `v` hold one `v`, not a
/// thousand. Equal to `Arc::from(name)` in every way but memory.
pub fn shared_name(name: &str) -> Arc<str> {
    if name.len() > SHARED_NAME_MAX {
        return Arc::from(name);
    }
    NAMES.with(|cell| {
        let Ok(mut names) = cell.try_borrow_mut() else {
            return Arc::from(name);
        };
        let (list, next) = &mut *names;
        if let Some(found) = list.iter().find(|n| &***n == name) {
            return found.clone();
        }
        let fresh: Arc<str> = Arc::from(name);
        if list.len() < SHARED_NAMES {
            list.push(fresh.clone());
        } else {
            list[*next] = fresh.clone();
            *next = (*next + 1) % SHARED_NAMES;
        }
        fresh
    })
}

/// A namespace's name as the caller has it.
#[derive(Clone, Copy)]
enum NsName<'a> {
    Str(&'a str),
    Shared(&'a Arc<str>),
}

impl NsName<'_> {
    fn as_str(&self) -> &str {
        match self {
            NsName::Str(s) => s,
            NsName::Shared(s) => s,
        }
    }

    fn shared(&self) -> Arc<str> {
        match self {
            NsName::Str(s) => Arc::from(*s),
            NsName::Shared(s) => Arc::clone(s),
        }
    }
}

fn estimate_size(v: &Value) -> u64 {
    match v {
        Value::Null | Value::Bool(_) => 8,
        Value::Number(_) => 16,
        Value::String(s) => 24 + s.len() as u64,
        Value::Array(a) => 24 + a.iter().map(estimate_size).sum::<u64>(),
        Value::Object(o) => {
            32 + o
                .iter()
                .map(|(k, v)| 24 + k.len() as u64 + estimate_size(v))
                .sum::<u64>()
        }
    }
}

/// Serializes `value` and stores it at `namespace.key`.
pub fn insert_value<T: Serialize>(
    cache: &Cache,
    namespace: &str,
    key: &str,
    value: T,
) -> Result<(), CacheError> {
    let v = serde_json::to_value(value).map_err(|source| CacheError::Serialize {
        namespace: namespace.to_string(),
        key: key.to_string(),
        source,
    })?;
    cache.insert(namespace, key, v);
    Ok(())
}

/// The value at `namespace.key`, or [`CacheError::NotFound`].
pub fn get_value_from_cache(
    cache: &Cache,
    namespace: &str,
    key: &str,
) -> Result<Arc<Value>, CacheError> {
    cache
        .get(namespace, key)
        .ok_or_else(|| CacheError::NotFound {
            namespace: namespace.to_string(),
            key: key.to_string(),
        })
}

/// Reads the input `name` of a node through its declared reference (or
/// literal) and deserializes it to `T`. Errors name the input and the reference.
pub fn parse_input_from_name<T: DeserializeOwned>(
    cache: &Cache,
    name: &str,
    inputs: &[InputSpec],
) -> Result<T, CacheError> {
    let spec = inputs
        .iter()
        .find(|i| i.name == name)
        .ok_or_else(|| CacheError::UnknownInput {
            input: name.to_string(),
        })?;
    let value = cache.resolve_input(spec)?;
    T::deserialize(&*value).map_err(|e| CacheError::WrongType {
        input: name.to_string(),
        reference: spec.reference.clone().unwrap_or_else(|| "<literal>".into()),
        message: e.to_string(),
    })
}

/// The cache as compact JSON.
pub fn serialize_cache_to_json(cache: &Cache) -> Result<String, CacheError> {
    serde_json::to_string(&cache.to_json())
        .map_err(|e| CacheError::MalformedSnapshot(format!("cannot serialize cache: {e}")))
}

/// The cache as indented JSON.
pub fn serialize_cache_to_prettyjson(cache: &Cache) -> Result<String, CacheError> {
    serde_json::to_string_pretty(&cache.to_json())
        .map_err(|e| CacheError::MalformedSnapshot(format!("cannot serialize cache: {e}")))
}

/// A new cache from JSON written by [`serialize_cache_to_json`].
pub fn load_cache_from_json(json: &str) -> Result<Cache, CacheError> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| CacheError::MalformedSnapshot(e.to_string()))?;
    let cache = Cache::new();
    cache.merge_json(&v)?;
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_names_are_shared_and_long_ones_copied() {
        let (a, b) = (shared_name("v"), shared_name("v"));
        assert!(Arc::ptr_eq(&a, &b), "one `v` for both");
        assert_eq!(&*a, "v");
        // More names than the thread remembers: each is still the right string.
        let many: Vec<String> = (0..3 * SHARED_NAMES).map(|i| format!("k{i}")).collect();
        for name in &many {
            assert_eq!(&*shared_name(name), name.as_str());
        }
        let long = "x".repeat(SHARED_NAME_MAX + 1);
        let (c, d) = (shared_name(&long), shared_name(&long));
        assert!(!Arc::ptr_eq(&c, &d), "long names are not remembered");
        assert_eq!(*c, *long);
    }

    #[test]
    fn insert_and_read_typed_inputs() {
        let cache = Cache::new();
        insert_value(&cache, "inputs", "age", 30).unwrap();
        insert_value(&cache, "load", "rows", vec![1, 2, 3]).unwrap();
        let inputs = vec![
            InputSpec::reference("age", "inputs.age"),
            InputSpec::reference("rows", "load.rows"),
            InputSpec::literal("mode", json!("fast")),
        ];
        let age: i32 = parse_input_from_name(&cache, "age", &inputs).unwrap();
        let rows: Vec<u8> = parse_input_from_name(&cache, "rows", &inputs).unwrap();
        let mode: String = parse_input_from_name(&cache, "mode", &inputs).unwrap();
        assert_eq!((age, rows, mode.as_str()), (30, vec![1, 2, 3], "fast"));
    }

    #[test]
    fn input_errors_name_input_and_reference() {
        let cache = Cache::new();
        insert_value(&cache, "inputs", "age", "thirty").unwrap();
        let inputs = vec![
            InputSpec::reference("age", "inputs.age"),
            InputSpec::reference("x", "load.rows"),
        ];
        let e = parse_input_from_name::<i32>(&cache, "age", &inputs).unwrap_err();
        assert!(
            matches!(&e, CacheError::WrongType { input, reference, .. } if input == "age" && reference == "inputs.age"),
            "{e}"
        );
        let e = parse_input_from_name::<i32>(&cache, "x", &inputs).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `x`: reference `load.rows` has no value in the cache"
        );
        let e = parse_input_from_name::<i32>(&cache, "nope", &inputs).unwrap_err();
        assert_eq!(e.to_string(), "input `nope` is not declared by the node");
    }

    #[test]
    fn json_round_trip() {
        let cache = Cache::new();
        cache.insert("a", "x", json!({"deep": [1, "two", null]}));
        cache.insert("b", "y", json!(true));
        let text = serialize_cache_to_json(&cache).unwrap();
        let back = load_cache_from_json(&text).unwrap();
        assert_eq!(back.to_json(), cache.to_json());
        assert!(
            serialize_cache_to_prettyjson(&cache)
                .unwrap()
                .contains('\n')
        );
        assert!(matches!(
            load_cache_from_json("[1]"),
            Err(CacheError::MalformedSnapshot(_))
        ));
    }

    #[test]
    fn reads_share_values_instead_of_copying() {
        let cache = Cache::new();
        cache.insert("n", "big", json!(vec![0; 1000]));
        let a = cache.get("n", "big").unwrap();
        let b = cache.get("n", "big").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn namespaces_stay_readable_as_they_grow_past_the_short_form() {
        let cache = Cache::new();
        for i in 0..40 {
            cache.insert("big", &format!("k{i}"), json!(i));
        }
        cache.insert("big", "k3", json!("replaced"));
        assert_eq!(cache.len(), 40);
        assert_eq!(*cache.get("big", "k39").unwrap(), json!(39));
        assert_eq!(*cache.get("big", "k3").unwrap(), json!("replaced"));
        assert_eq!(cache.namespace("big").unwrap().len(), 40);
        let object: Map<String, Value> = (0..20).map(|i| (format!("o{i}"), json!(i))).collect();
        cache.insert_object("obj", &Value::Object(object));
        assert_eq!(*cache.get("obj", "o19").unwrap(), json!(19));
        assert_eq!(cache.len(), 60);
    }

    #[test]
    fn insert_object_shared_merges_into_an_existing_namespace() {
        let cache = Cache::new();
        let ns: Arc<str> = Arc::from("node");
        cache.insert("node", "kept", json!(1));
        cache.insert_object_shared(&ns, &json!({"v": 2, "kept": 3}));
        cache.insert_object_shared(&Arc::from("scalar"), &json!(7));
        assert_eq!(*cache.get("node", "v").unwrap(), json!(2));
        assert_eq!(*cache.get("node", "kept").unwrap(), json!(3));
        assert_eq!(*cache.get("scalar", "value").unwrap(), json!(7));
        assert_eq!(
            cache.to_json(),
            json!({"node": {"v": 2, "kept": 3}, "scalar": {"value": 7}})
        );
    }

    #[test]
    fn bounded_caches_account_for_object_inserts() {
        let cache = Cache::with_config(CacheConfig {
            max_entries: 3,
            ..Default::default()
        })
        .unwrap();
        cache.insert_object_shared(&Arc::from("a"), &json!({"x": 1, "y": 2}));
        cache.insert_object("b", &json!({"z": 3, "w": 4}));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.evictions(), 1);
        assert!(cache.get("b", "w").is_some());
    }

    #[test]
    fn lru_evicts_least_recently_used() {
        let cache = Cache::with_config(CacheConfig {
            max_entries: 2,
            ..Default::default()
        })
        .unwrap();
        cache.insert("n", "a", json!(1));
        cache.insert("n", "b", json!(2));
        assert!(cache.get("n", "a").is_some()); // a is now more recent than b
        cache.insert("n", "c", json!(3));
        assert!(cache.get("n", "b").is_none(), "b was least recently used");
        assert!(cache.get("n", "a").is_some());
        assert!(cache.get("n", "c").is_some());
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.evictions(), 1);
    }

    #[test]
    fn fifo_ignores_reads() {
        let cache = Cache::with_config(CacheConfig {
            max_entries: 2,
            eviction_policy: EvictionPolicy::Fifo,
            ..Default::default()
        })
        .unwrap();
        cache.insert("n", "a", json!(1));
        cache.insert("n", "b", json!(2));
        assert!(cache.get("n", "a").is_some());
        cache.insert("n", "c", json!(3));
        assert!(cache.get("n", "a").is_none(), "a was written first");
    }

    #[test]
    fn memory_bound_keeps_estimate_under_limit() {
        let cache = Cache::with_config(CacheConfig {
            max_memory_mb: 1,
            ..Default::default()
        })
        .unwrap();
        let blob = "x".repeat(100 * 1024);
        for i in 0..50 {
            cache.insert("n", &format!("k{i}"), json!(blob));
        }
        assert!(cache.estimated_bytes().unwrap() <= 1024 * 1024);
        assert!(cache.get("n", "k49").is_some(), "newest survives");
        assert!(cache.get("n", "k0").is_none(), "oldest evicted");
        assert!(
            Cache::with_config(CacheConfig {
                max_memory_mb: usize::MAX,
                ..Default::default()
            })
            .is_err()
        );
        let unbounded = Cache::with_config(CacheConfig::default()).unwrap();
        assert_eq!(unbounded.estimated_bytes(), None, "0 is no bound");
    }
}

//! The graph shapes of `WORKLOADS.md`, built deterministically from
//! splitmix64 with seed 42, so every engine runs exactly the same graph.

/// The splitmix64 generator `WORKLOADS.md` specifies.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A DAG: node `i` is named `n{i}` and depends on `deps[i]` (indices of
/// earlier nodes, in the order the shape lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Dependencies of each node.
    pub deps: Vec<Vec<u32>>,
}

impl Shape {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.deps.len()
    }

    /// Whether the shape has no nodes.
    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }

    /// Number of edges.
    pub fn edges(&self) -> usize {
        self.deps.iter().map(Vec::len).sum()
    }

    /// The dependents of each node (the reverse of `deps`).
    pub fn dependents(&self) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); self.deps.len()];
        for (i, deps) in self.deps.iter().enumerate() {
            for &d in deps {
                out[d as usize].push(i as u32);
            }
        }
        out
    }

    /// The name of node `i`.
    pub fn name(i: usize) -> String {
        format!("n{i}")
    }

    /// `layered(L, W, k)`: layer 0 has no dependencies; every later node
    /// depends on `k` distinct nodes of the previous layer, drawn with
    /// `next() % W` (seed 42) in draw order, node after node in id order.
    pub fn layered(layers: usize, width: usize, k: usize) -> Self {
        assert!(k <= width, "k must not exceed the width");
        let mut rng = SplitMix64::new(42);
        let mut deps = Vec::with_capacity(layers * width);
        for l in 0..layers {
            for _c in 0..width {
                if l == 0 {
                    deps.push(Vec::new());
                    continue;
                }
                let mut cols: Vec<u32> = Vec::with_capacity(k);
                while cols.len() < k {
                    let c = (rng.next_u64() % width as u64) as u32;
                    if !cols.contains(&c) {
                        cols.push(c);
                    }
                }
                deps.push(
                    cols.into_iter()
                        .map(|c| ((l - 1) * width) as u32 + c)
                        .collect(),
                );
            }
        }
        Self { deps }
    }

    /// `chain(N)`: node `i` depends on node `i - 1`.
    pub fn chain(n: usize) -> Self {
        Self {
            deps: (0..n)
                .map(|i| {
                    if i == 0 {
                        Vec::new()
                    } else {
                        vec![i as u32 - 1]
                    }
                })
                .collect(),
        }
    }

    /// `fan(N)`: one source, `N` middle nodes on it, one sink on all of them.
    pub fn fan(n: usize) -> Self {
        let mut deps = Vec::with_capacity(n + 2);
        deps.push(Vec::new());
        deps.extend((0..n).map(|_| vec![0]));
        deps.push((1..=n as u32).collect());
        Self { deps }
    }

    /// `dense(L, W)`: every node of layer `l ≥ 1` depends on all `W` nodes of layer `l - 1`.
    pub fn dense(layers: usize, width: usize) -> Self {
        let mut deps = Vec::with_capacity(layers * width);
        for l in 0..layers {
            for _ in 0..width {
                deps.push(if l == 0 {
                    Vec::new()
                } else {
                    (((l - 1) * width) as u32..(l * width) as u32).collect()
                });
            }
        }
        Self { deps }
    }

    /// Three independent nodes (D7).
    pub fn independent(n: usize) -> Self {
        Self {
            deps: vec![Vec::new(); n],
        }
    }

    /// Length (in nodes) of the longest path.
    pub fn critical_path(&self) -> usize {
        let mut depth = vec![0usize; self.deps.len()];
        for (i, deps) in self.deps.iter().enumerate() {
            depth[i] = deps.iter().map(|&d| depth[d as usize]).max().unwrap_or(0) + 1;
        }
        depth.into_iter().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Reference values of splitmix64 seeded with 0 (Vigna's test vector start).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn shapes_have_the_sizes_workloads_md_gives() {
        let d1 = Shape::layered(100, 100, 2);
        assert_eq!(d1.len(), 10_000);
        assert_eq!(d1.edges(), 99 * 100 * 2);
        assert!(d1.deps[250].iter().all(|&d| (100..200).contains(&d)));
        assert_ne!(d1.deps[250][0], d1.deps[250][1]);
        assert_eq!(d1.critical_path(), 100);
        assert_eq!(Shape::chain(10).critical_path(), 10);
        let fan = Shape::fan(10);
        assert_eq!((fan.len(), fan.edges()), (12, 20));
        let dense = Shape::dense(32, 32);
        assert_eq!((dense.len(), dense.edges()), (1024, 31 * 32 * 32));
    }
}

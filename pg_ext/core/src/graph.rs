//! The approximate index's graph: a hierarchical navigable small world (HNSW, Malkov and
//! Yashunin, 2016), one per key value (per tenant), over any storage.
//!
//! The algorithms here know nothing of pages, locks or keys: they reach nodes through a
//! [`Store`], which the extension implements over the index relation's pages (opening sealed
//! records in backend memory), and the tests over vectors in memory. What they decide:
//!
//! - **Construction** ([`insert`]): a new node gets a random level ([`Params::level_for`]);
//!   from the entry point the search descends greedily to the node's top level, then on each
//!   level from there down collects `ef_construction` candidates and links the node to those the
//!   neighbour heuristic keeps ([`select_neighbours`]), in both directions, shrinking any list
//!   that overflows with the same heuristic.
//! - **Neighbour selection** keeps a candidate only if it is nearer to the node than to every
//!   neighbour kept so far (so that links spread in every direction rather than bunch in one
//!   cluster), then fills the remaining slots with the nearest candidates it passed over. The
//!   fill keeps well-separated clusters linked: a graph pruned by the heuristic alone can leave a
//!   cluster reachable by one or two links, which a small `ef_search` then misses entirely.
//! - **Search** ([`Scan`]): a scan yields the nearest nodes in batches. The first is the classic
//!   beam search with `ef_search` candidates; each further batch resumes the walk where it stopped
//!   with twice the beam, and when the walk has reached every node it can, the rest of the key's
//!   nodes are yielded by exact distance. A scan therefore yields every node exactly once, so a
//!   caller that filters (rows another transaction cannot see, a metadata condition) keeps
//!   asking until it has `k` and is never short. Batches after the first are in approximate
//!   order, as with pgvector's relaxed iterative scans.
//! - **Repair** ([`repair`]): VACUUM relinks each node whose neighbours were deleted to the
//!   best of its live neighbours and of theirs.
//!
//! Distances are the metric's (smaller is nearer), as `f64`; NaN never reaches a graph (the
//! extension does not index NaN vectors or zero vectors under cosine).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rustc_hash::FxHashSet as HashSet;

use crate::distance::{self, Metric};
use std::fmt::Debug;
use std::hash::Hash;

pub mod frozen;
pub mod memory;
pub mod record;

#[cfg(test)]
mod tests;

/// How a graph compares vectors: a score that orders as the metric's distance does, cheaper to
/// compute. L2 compares squared distances (no square root); cosine compares the negated dot
/// product of vectors normalised once, when they enter the graph (and the query, when a scan
/// starts), as pgvector does; inner product and L1 are their own distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub metric: Metric,
}

impl Space {
    pub fn new(metric: Metric) -> Self {
        Space { metric }
    }

    /// The vector as the graph keeps it: normalised for cosine (none for a zero vector, which
    /// has no cosine distance), as it is otherwise.
    pub fn prepare(&self, v: &[f32]) -> Option<Vec<f32>> {
        if self.metric != Metric::Cosine {
            return Some(v.to_vec());
        }
        let norm = distance::inner_product(v, v).sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return None;
        }
        Some(v.iter().map(|x| (f64::from(*x) / norm) as f32).collect())
    }

    /// The score of two prepared vectors (smaller is nearer).
    pub fn score(&self, a: &[f32], b: &[f32]) -> f64 {
        let k = distance::selected();
        match self.metric {
            Metric::L2 => f64::from((k.l2_squared)(a, b)),
            Metric::Cosine | Metric::InnerProduct => -f64::from((k.dot)(a, b)),
            Metric::L1 => f64::from((k.l1)(a, b)),
        }
    }

    /// The metric's distance for a score.
    pub fn distance(&self, score: f64) -> f64 {
        match self.metric {
            Metric::L2 => score.max(0.0).sqrt(),
            Metric::Cosine => (1.0 + score).clamp(0.0, 2.0),
            Metric::InnerProduct | Metric::L1 => score,
        }
    }
}

/// The highest level a node can have. With `m = 2` a level above 15 has odds below 1 in 30,000;
/// for pgvector's default `m = 16`, below 1 in 10^18.
pub const MAX_LEVEL: usize = 15;

/// A graph that grows by single inserts keeps its nodes unlinked (and is scanned exactly) until
/// it has this many, then links them all at once: a tenant's first thousand rows cost an
/// append each, not a walk each (a graph built by CREATE INDEX is linked whatever its size).
pub const LINK_AT: u64 = 1000;

/// Bounds of the options, as pgvector's.
pub const M_RANGE: (usize, usize) = (2, 100);
pub const EF_CONSTRUCTION_RANGE: (usize, usize) = (4, 1000);
pub const EF_SEARCH_RANGE: (usize, usize) = (1, 1000);

/// A graph's build options (`WITH (m, ef_construction)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Links per node on levels above 0 (twice as many on level 0).
    pub m: usize,
    /// Candidates collected on each level when a node is inserted.
    pub ef_construction: usize,
}

/// Options out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("m must be between {} and {}", M_RANGE.0, M_RANGE.1)]
    M,
    #[error("ef_construction must be between {} and {}", EF_CONSTRUCTION_RANGE.0, EF_CONSTRUCTION_RANGE.1)]
    EfConstruction,
    #[error("ef_construction must be greater than or equal to 2 * m")]
    EfConstructionBelowM,
    #[error("ef_search must be between {} and {}", EF_SEARCH_RANGE.0, EF_SEARCH_RANGE.1)]
    EfSearch,
}

impl Default for Params {
    /// pgvector's defaults.
    fn default() -> Self {
        Params {
            m: 16,
            ef_construction: 64,
        }
    }
}

impl Params {
    pub fn new(m: i64, ef_construction: i64) -> Result<Self, ParamsError> {
        let within = |v: i64, (lo, hi): (usize, usize)| v >= lo as i64 && v <= hi as i64;
        if !within(m, M_RANGE) {
            return Err(ParamsError::M);
        }
        if !within(ef_construction, EF_CONSTRUCTION_RANGE) {
            return Err(ParamsError::EfConstruction);
        }
        if ef_construction < 2 * m {
            return Err(ParamsError::EfConstructionBelowM);
        }
        Ok(Params {
            m: m as usize,
            ef_construction: ef_construction as usize,
        })
    }

    /// The longest neighbour list on `level`.
    pub fn max_neighbours(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    /// The level of a new node, from `u` drawn uniformly from (0, 1]: `floor(-ln(u) / ln(m))`,
    /// so that each level holds about `1/m` of the nodes of the one below.
    pub fn level_for(&self, u: f64) -> usize {
        let u = if u > 0.0 && u <= 1.0 { u } else { 1.0 };
        let level = (-u.ln() / (self.m as f64).ln()).floor();
        (level as usize).min(MAX_LEVEL)
    }
}

/// `ef_search` checked against its range.
pub fn ef_search(value: i64) -> Result<usize, ParamsError> {
    if value < EF_SEARCH_RANGE.0 as i64 || value > EF_SEARCH_RANGE.1 as i64 {
        return Err(ParamsError::EfSearch);
    }
    Ok(value as usize)
}

/// Where a graph's nodes live. Ids are small copyable handles (the extension's are index
/// item pointers); every node has neighbour lists for levels `0..=level(id)`.
pub trait Store {
    type Id: Copy + Eq + Hash + Ord + Debug;
    type Error;

    /// The distance from `query` to node `id`'s vector.
    fn distance(&mut self, query: &[f32], id: Self::Id) -> Result<f64, Self::Error>;
    /// The distance between two nodes' vectors.
    fn distance_between(&mut self, a: Self::Id, b: Self::Id) -> Result<f64, Self::Error>;
    /// The node's neighbours on `level` (at most `Params::max_neighbours(level)`).
    fn neighbours(&mut self, id: Self::Id, level: usize) -> Result<Vec<Self::Id>, Self::Error>;
    /// Replaces the node's neighbours on `level`.
    fn set_neighbours(
        &mut self,
        id: Self::Id,
        level: usize,
        neighbours: &[Self::Id],
    ) -> Result<(), Self::Error>;
    /// Every node of the graph (for the exhaustive end of a scan, and for small graphs).
    fn all(&mut self) -> Result<Vec<Self::Id>, Self::Error>;
}

/// A node and its distance, ordered by distance, then id (a total order: ties are broken the
/// same way every time, so results are deterministic).
#[derive(Debug, Clone, Copy)]
pub struct Near<Id> {
    pub distance: f64,
    pub id: Id,
}

impl<Id: Ord> PartialEq for Near<Id> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<Id: Ord> Eq for Near<Id> {}
impl<Id: Ord> PartialOrd for Near<Id> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<Id: Ord> Ord for Near<Id> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// The graph's entry point: a node on the top level, and that level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<Id> {
    pub id: Id,
    pub level: usize,
}

/// The beam search on one level: the `ef` nearest nodes to `query` reachable from `from`,
/// nearest first. `visited` is shared by the levels of one descent.
fn search_level<S: Store>(
    store: &mut S,
    query: &[f32],
    from: &[Near<S::Id>],
    ef: usize,
    level: usize,
    visited: &mut HashSet<S::Id>,
) -> Result<Vec<Near<S::Id>>, S::Error> {
    let mut candidates: BinaryHeap<Reverse<Near<S::Id>>> = BinaryHeap::new();
    let mut best: BinaryHeap<Near<S::Id>> = BinaryHeap::new();
    for &n in from {
        visited.insert(n.id);
        candidates.push(Reverse(n));
        best.push(n);
    }
    while best.len() > ef {
        best.pop();
    }
    while let Some(Reverse(c)) = candidates.pop() {
        if best.len() >= ef && best.peek().is_some_and(|w| c.distance > w.distance) {
            break;
        }
        for id in store.neighbours(c.id, level)? {
            if !visited.insert(id) {
                continue;
            }
            let distance = store.distance(query, id)?;
            if best.len() < ef || best.peek().is_some_and(|w| distance < w.distance) {
                let n = Near { distance, id };
                candidates.push(Reverse(n));
                best.push(n);
                if best.len() > ef {
                    best.pop();
                }
            }
        }
    }
    Ok(best.into_sorted_vec())
}

/// The greedy descent from the entry point to `down_to` (exclusive of nothing: it returns the
/// nearest node found on level `down_to`).
fn descend<S: Store>(
    store: &mut S,
    query: &[f32],
    entry: Entry<S::Id>,
    down_to: usize,
) -> Result<Near<S::Id>, S::Error> {
    let mut at = Near {
        distance: store.distance(query, entry.id)?,
        id: entry.id,
    };
    let mut level = entry.level;
    while level > down_to {
        let mut visited = HashSet::default();
        at = search_level(store, query, &[at], 1, level, &mut visited)?[0];
        level -= 1;
    }
    Ok(at)
}

/// The widest beam on level 1 when a scan starts. Finding the query's region takes a few nodes
/// there; a beam as wide as a large `ef_search` costs more than the walk it starts (measured in
/// `bench hnsw`: at `ef_search` 200 it halved the queries per second).
const START_BEAM: usize = 32;

/// Where a scan's walk of level 0 starts: the greedy descent to level 1, then a beam of `ef`
/// on level 1, whose nodes all become starting points. Level 1 holds about one node in `m`,
/// spread over the whole graph, so a beam there reaches the query's region even when the
/// greedy descent alone would land in a neighbouring cluster that few links leave (the way
/// HNSW loses whole clusters of well-separated data).
fn starts<S: Store>(
    store: &mut S,
    query: &[f32],
    entry: Entry<S::Id>,
    ef: usize,
) -> Result<Vec<Near<S::Id>>, S::Error> {
    if entry.level == 0 {
        return Ok(vec![Near {
            distance: store.distance(query, entry.id)?,
            id: entry.id,
        }]);
    }
    let top = descend(store, query, entry, 1)?;
    let mut visited = HashSet::default();
    search_level(store, query, &[top], ef, 1, &mut visited)
}

/// Of `candidates` (nearest to `base` first), the at most `m` that `base` links to: each kept
/// only if nearer to `base` than to any kept before it, then the slots left filled with the
/// nearest of those passed over.
pub fn select_neighbours<S: Store>(
    store: &mut S,
    candidates: &[Near<S::Id>],
    m: usize,
) -> Result<Vec<Near<S::Id>>, S::Error> {
    let mut kept: Vec<Near<S::Id>> = Vec::with_capacity(m);
    let mut passed = Vec::new();
    for &c in candidates {
        if kept.len() >= m {
            break;
        }
        let mut diverse = true;
        for k in &kept {
            if store.distance_between(c.id, k.id)? < c.distance {
                diverse = false;
                break;
            }
        }
        if diverse {
            kept.push(c);
        } else {
            passed.push(c);
        }
    }
    for c in passed {
        if kept.len() >= m {
            break;
        }
        kept.push(c);
    }
    kept.sort();
    Ok(kept)
}

/// Links node `id` (already in the store, with empty lists on levels `0..=level`) into the
/// graph whose entry point is `entry`, and returns the graph's entry point after it.
pub fn insert<S: Store>(
    store: &mut S,
    params: &Params,
    entry: Option<Entry<S::Id>>,
    id: S::Id,
    vector: &[f32],
    level: usize,
) -> Result<Entry<S::Id>, S::Error> {
    let Some(entry) = entry else {
        return Ok(Entry { id, level });
    };
    let mut from = vec![descend(store, vector, entry, level.min(entry.level))?];
    for lc in (0..=level.min(entry.level)).rev() {
        let mut visited = HashSet::default();
        visited.insert(id);
        let found = search_level(
            store,
            vector,
            &from,
            params.ef_construction,
            lc,
            &mut visited,
        )?;
        let found: Vec<_> = found.into_iter().filter(|n| n.id != id).collect();
        let max = params.max_neighbours(lc);
        let chosen = select_neighbours(store, &found, max)?;
        store.set_neighbours(id, lc, &chosen.iter().map(|n| n.id).collect::<Vec<_>>())?;
        for n in &chosen {
            link(store, n.id, id, n.distance, lc, max)?;
        }
        if !found.is_empty() {
            from = found;
        }
    }
    Ok(if level > entry.level {
        Entry { id, level }
    } else {
        entry
    })
}

/// Adds `new` (at `distance`) to `node`'s list on `level`, shrinking it with the heuristic if
/// it overflows.
fn link<S: Store>(
    store: &mut S,
    node: S::Id,
    new: S::Id,
    distance: f64,
    level: usize,
    max: usize,
) -> Result<(), S::Error> {
    let mut list = store.neighbours(node, level)?;
    if list.contains(&new) {
        return Ok(());
    }
    if list.len() < max {
        list.push(new);
        return store.set_neighbours(node, level, &list);
    }
    let mut candidates = Vec::with_capacity(list.len() + 1);
    candidates.push(Near { distance, id: new });
    for other in list {
        candidates.push(Near {
            distance: store.distance_between(node, other)?,
            id: other,
        });
    }
    candidates.sort();
    let kept = select_neighbours(store, &candidates, max)?;
    store.set_neighbours(node, level, &kept.iter().map(|n| n.id).collect::<Vec<_>>())
}

/// Relinks `id` on `level` after deletions: its live neighbours and the live neighbours of its
/// deleted ones, through the heuristic. Returns whether its list changed.
pub fn repair<S: Store>(
    store: &mut S,
    params: &Params,
    id: S::Id,
    level: usize,
    deleted: &dyn Fn(S::Id) -> bool,
) -> Result<bool, S::Error> {
    let list = store.neighbours(id, level)?;
    if !list.iter().any(|&n| deleted(n)) {
        return Ok(false);
    }
    let mut seen = HashSet::default();
    seen.insert(id);
    let mut candidates = Vec::new();
    for n in list {
        let mut consider = vec![n];
        if deleted(n) {
            consider = store.neighbours(n, level)?;
        }
        for c in consider {
            if deleted(c) || !seen.insert(c) {
                continue;
            }
            candidates.push(Near {
                distance: store.distance_between(id, c)?,
                id: c,
            });
        }
    }
    candidates.sort();
    let kept = select_neighbours(store, &candidates, params.max_neighbours(level))?;
    store.set_neighbours(id, level, &kept.iter().map(|n| n.id).collect::<Vec<_>>())?;
    Ok(true)
}

/// A scan of one graph for one query: every node, nearest (approximately) first, in batches.
pub struct Scan<Id> {
    query: Vec<f32>,
    beam: usize,
    visited: HashSet<Id>,
    /// Reached, not yet expanded (the walk's frontier), nearest first.
    frontier: BinaryHeap<Reverse<Near<Id>>>,
    /// Reached, not yet yielded.
    found: BinaryHeap<Reverse<Near<Id>>>,
    /// The current batch, farthest first (popped from the end).
    batch: Vec<Near<Id>>,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Walking,
    Exhaustive,
    Done,
}

impl<Id: Copy + Eq + Hash + Ord + Debug> Scan<Id> {
    /// A scan whose first batch is the `ef_search` nearest the walk finds.
    pub fn new(query: &[f32], ef_search: usize) -> Self {
        Scan {
            query: query.to_vec(),
            beam: ef_search.max(1),
            visited: HashSet::default(),
            frontier: BinaryHeap::new(),
            found: BinaryHeap::new(),
            batch: Vec::new(),
            phase: Phase::Start,
        }
    }

    /// A scan that yields every node by exact distance (for a graph small enough that walking
    /// it would not pay).
    pub fn exact(query: &[f32]) -> Self {
        let mut scan = Scan::new(query, 1);
        scan.phase = Phase::Walking;
        scan
    }

    /// The next node, or none when every node of the graph has been yielded. `entry` is the
    /// graph's entry point (none for an empty graph).
    pub fn next<S: Store<Id = Id>>(
        &mut self,
        store: &mut S,
        entry: Option<Entry<Id>>,
    ) -> Result<Option<Near<Id>>, S::Error> {
        loop {
            if let Some(n) = self.batch.pop() {
                return Ok(Some(n));
            }
            match self.phase {
                Phase::Start => {
                    let Some(entry) = entry else {
                        self.phase = Phase::Done;
                        continue;
                    };
                    let beam = self.beam.min(START_BEAM);
                    for start in starts(store, &self.query, entry, beam)? {
                        self.visited.insert(start.id);
                        self.frontier.push(Reverse(start));
                        self.found.push(Reverse(start));
                    }
                    self.phase = Phase::Walking;
                    self.walk(store)?;
                }
                Phase::Walking => {
                    if self.frontier.is_empty() {
                        self.phase = Phase::Exhaustive;
                        self.rest(store)?;
                    } else {
                        self.beam = self.beam.saturating_mul(2);
                        self.walk(store)?;
                    }
                }
                Phase::Exhaustive => self.phase = Phase::Done,
                Phase::Done => return Ok(None),
            }
        }
    }

    /// Expands the frontier until the `beam` nearest reached and not yet yielded are settled
    /// (no frontier node is nearer than the farthest of them), then makes them the batch.
    fn walk<S: Store<Id = Id>>(&mut self, store: &mut S) -> Result<(), S::Error> {
        // The beam's farthest distance: the beam-th nearest of `found`, tracked with a
        // bounded max-heap of the nearest `beam` found so far.
        let mut nearest: BinaryHeap<Near<Id>> = self.found.iter().map(|r| r.0).collect();
        while nearest.len() > self.beam {
            nearest.pop();
        }
        while let Some(&Reverse(c)) = self.frontier.peek() {
            if nearest.len() >= self.beam && nearest.peek().is_some_and(|w| c.distance > w.distance)
            {
                break;
            }
            self.frontier.pop();
            for id in store.neighbours(c.id, 0)? {
                if !self.visited.insert(id) {
                    continue;
                }
                let n = Near {
                    distance: store.distance(&self.query, id)?,
                    id,
                };
                // Everything reached stays reachable later: a node beyond the beam now may be
                // in a later, wider batch.
                self.frontier.push(Reverse(n));
                self.found.push(Reverse(n));
                if nearest.len() < self.beam || nearest.peek().is_some_and(|w| n < *w) {
                    nearest.push(n);
                    if nearest.len() > self.beam {
                        nearest.pop();
                    }
                }
            }
        }
        // The batch: the found nodes up to the beam's farthest, nearest first.
        let limit = nearest.peek().copied();
        let mut batch = Vec::new();
        while let Some(&Reverse(n)) = self.found.peek() {
            if limit.is_some_and(|l| n > l) {
                break;
            }
            self.found.pop();
            batch.push(n);
        }
        batch.reverse();
        self.batch = batch;
        Ok(())
    }

    /// The nodes the walk never reached (and those reached but never yielded), by exact distance.
    fn rest<S: Store<Id = Id>>(&mut self, store: &mut S) -> Result<(), S::Error> {
        let mut rest: Vec<Near<Id>> = self.found.drain().map(|r| r.0).collect();
        for id in store.all()? {
            if self.visited.insert(id) {
                rest.push(Near {
                    distance: store.distance(&self.query, id)?,
                    id,
                });
            }
        }
        rest.sort_unstable_by(|a, b| b.cmp(a));
        self.batch = rest;
        Ok(())
    }
}

//! A graph read whole into memory for scans: what a backend keeps of a graph between queries
//! while no writer changes it (the extension checks the graph's version, kept with it on its
//! pages, before each scan). Its nodes keep their page addresses as ids, so a scan over it
//! yields what a scan over the pages yields.

use rustc_hash::FxHashMap;
use zeroize::Zeroize;

use super::record::ItemId;
use super::{Space, Store};

/// One node as the pages hold it.
pub struct FrozenNode {
    pub id: ItemId,
    pub heap: ItemId,
    pub live: bool,
    /// Prepared for the graph's space, of the graph's dimensions.
    pub vector: Vec<f32>,
    pub lists: Vec<Vec<ItemId>>,
}

/// A read-only graph in memory (vectors wiped when it is dropped: a sealed graph's are
/// plaintext here).
pub struct Frozen {
    space: Space,
    dims: usize,
    index: FxHashMap<ItemId, u32>,
    ids: Vec<ItemId>,
    heap: Vec<ItemId>,
    live: Vec<bool>,
    vectors: Vec<f32>,
    lists: Vec<Vec<Vec<ItemId>>>,
    bytes: usize,
}

impl Frozen {
    /// The graph of `nodes`, all of `dims` dimensions (none of other dimensions is kept).
    pub fn new(space: Space, dims: usize, nodes: impl IntoIterator<Item = FrozenNode>) -> Frozen {
        let mut g = Frozen {
            space,
            dims,
            index: FxHashMap::default(),
            ids: Vec::new(),
            heap: Vec::new(),
            live: Vec::new(),
            vectors: Vec::new(),
            lists: Vec::new(),
            bytes: 0,
        };
        for mut n in nodes {
            if n.vector.len() != dims {
                n.vector.zeroize();
                continue;
            }
            g.index.insert(n.id, g.ids.len() as u32);
            g.ids.push(n.id);
            g.heap.push(n.heap);
            g.live.push(n.live);
            g.vectors.extend_from_slice(&n.vector);
            n.vector.zeroize();
            g.bytes += 4 * dims
                + 48
                + n.lists
                    .iter()
                    .map(|l| 24 + std::mem::size_of::<ItemId>() * l.len())
                    .sum::<usize>();
            g.lists.push(n.lists);
        }
        g
    }

    /// About how much memory the graph takes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The node's heap row and whether it is live; none for a node the graph does not have.
    pub fn element(&self, id: ItemId) -> Option<(ItemId, bool)> {
        let i = *self.index.get(&id)? as usize;
        Some((self.heap[i], self.live[i]))
    }

    fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dims..(i + 1) * self.dims]
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.vectors.zeroize();
    }
}

/// What a frozen graph answers to a write: scans never write, and nothing else uses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOnly;

/// A link to a node the graph does not have (nothing written since it was read links to one)
/// is skipped; its distance is never asked for.
impl Store for Frozen {
    type Id = ItemId;
    type Error = ReadOnly;

    fn distance(&mut self, query: &[f32], id: ItemId) -> Result<f64, ReadOnly> {
        Ok(match self.index.get(&id) {
            Some(&i) => self.space.score(query, self.vector(i as usize)),
            None => f64::INFINITY,
        })
    }

    fn distance_between(&mut self, a: ItemId, b: ItemId) -> Result<f64, ReadOnly> {
        Ok(match (self.index.get(&a), self.index.get(&b)) {
            (Some(&i), Some(&j)) => self
                .space
                .score(self.vector(i as usize), self.vector(j as usize)),
            _ => f64::INFINITY,
        })
    }

    fn neighbours(&mut self, id: ItemId, level: usize) -> Result<Vec<ItemId>, ReadOnly> {
        Ok(self
            .index
            .get(&id)
            .and_then(|&i| self.lists[i as usize].get(level))
            .map(|l| {
                l.iter()
                    .copied()
                    .filter(|n| self.index.contains_key(n))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn set_neighbours(&mut self, _: ItemId, _: usize, _: &[ItemId]) -> Result<(), ReadOnly> {
        Err(ReadOnly)
    }

    fn all(&mut self) -> Result<Vec<ItemId>, ReadOnly> {
        Ok(self
            .ids
            .iter()
            .zip(&self.live)
            .filter(|(_, live)| **live)
            .map(|(id, _)| *id)
            .collect())
    }
}

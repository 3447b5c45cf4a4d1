//! A graph held in memory while an index is built, and where its nodes go on the index's pages.
//!
//! A build inserts every row into a [`MemoryGraph`] per key (the same [`insert`](super::insert)
//! as the index's own inserts, without a page read or write per step), then writes the nodes
//! page by page where [`place`] puts them, neighbour lists translated to page addresses.

use std::convert::Infallible;

use super::record::ItemId;
use super::{insert, Entry, Params, Space, Store};

/// The nodes of one key's graph, by insertion order (their ids).
pub struct MemoryGraph {
    space: Space,
    dims: usize,
    vectors: Vec<f32>,
    heap: Vec<ItemId>,
    lists: Vec<Vec<Vec<u32>>>,
    entry: Option<Entry<u32>>,
    bytes: usize,
}

impl MemoryGraph {
    pub fn new(space: Space, dims: usize) -> Self {
        MemoryGraph {
            space,
            dims,
            vectors: Vec::new(),
            heap: Vec::new(),
            lists: Vec::new(),
            entry: None,
            bytes: 0,
        }
    }

    /// Adds the row `heap` with `vector` (of the graph's dims, prepared for its space) on
    /// `level`, linked in.
    pub fn add(&mut self, params: &Params, heap: ItemId, vector: &[f32], level: usize) -> u32 {
        assert_eq!(
            vector.len(),
            self.dims,
            "a vector of the graph's dimensions"
        );
        let id = self.heap.len() as u32;
        self.vectors.extend_from_slice(vector);
        self.heap.push(heap);
        self.lists.push(vec![Vec::new(); level + 1]);
        self.bytes += 4 * self.dims
            + std::mem::size_of::<ItemId>()
            + (0..=level)
                .map(|l| 24 + 4 * params.max_neighbours(l))
                .sum::<usize>();
        let entry = self.entry;
        let Ok(entry) = insert(self, params, entry, id, vector, level);
        self.entry = Some(entry);
        id
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// About how much memory the graph holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn entry(&self) -> Option<Entry<u32>> {
        self.entry
    }

    pub fn vector(&self, id: u32) -> &[f32] {
        &self.vectors[id as usize * self.dims..(id as usize + 1) * self.dims]
    }

    pub fn heap(&self, id: u32) -> ItemId {
        self.heap[id as usize]
    }

    pub fn lists(&self, id: u32) -> &[Vec<u32>] {
        &self.lists[id as usize]
    }
}

impl Store for MemoryGraph {
    type Id = u32;
    type Error = Infallible;

    fn distance(&mut self, query: &[f32], id: u32) -> Result<f64, Infallible> {
        Ok(self.space.score(query, self.vector(id)))
    }

    fn distance_between(&mut self, a: u32, b: u32) -> Result<f64, Infallible> {
        Ok(self.space.score(self.vector(a), self.vector(b)))
    }

    fn neighbours(&mut self, id: u32, level: usize) -> Result<Vec<u32>, Infallible> {
        Ok(self.lists[id as usize]
            .get(level)
            .cloned()
            .unwrap_or_default())
    }

    fn set_neighbours(&mut self, id: u32, level: usize, n: &[u32]) -> Result<(), Infallible> {
        self.lists[id as usize][level] = n.to_vec();
        Ok(())
    }

    fn all(&mut self) -> Result<Vec<u32>, Infallible> {
        Ok((0..self.heap.len() as u32).collect())
    }
}

/// The bytes a page item of `len` bytes takes: its data, 8-byte aligned, and its line pointer.
pub fn item_cost(len: usize) -> usize {
    len.div_ceil(8) * 8 + 4
}

/// Where each node goes, in order, on pages from `first_block` on, each with `usable` bytes
/// for items: its element record at the returned place and its neighbour record on the line
/// after. `sizes` are the two records' lengths. A node whose records fill more than an empty
/// page is an error (its index).
pub fn place(
    sizes: impl IntoIterator<Item = (usize, usize)>,
    first_block: u32,
    usable: usize,
) -> Result<Vec<ItemId>, usize> {
    let mut out = Vec::new();
    let (mut block, mut offset, mut free) = (first_block, 1u16, usable);
    for (i, (element, neighbours)) in sizes.into_iter().enumerate() {
        let cost = item_cost(element) + item_cost(neighbours);
        if cost > usable {
            return Err(i);
        }
        if cost > free {
            block += 1;
            offset = 1;
            free = usable;
        }
        out.push(ItemId { block, offset });
        offset += 2;
        free -= cost;
    }
    Ok(out)
}

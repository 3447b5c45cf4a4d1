//! One key's graph on the index's pages, as the graph algorithms see it
//! (`sealstore_core::graph::Store`): node ids are element places, vectors and neighbour lists
//! read from their records as they are needed.

use std::collections::HashMap;
use std::convert::Infallible;

use pgrx::pg_sys;
use sealstore_core::graph::record::{self, ItemId};
use sealstore_core::graph::{Params, Space, Store};

use super::pages::{damaged, Index};

pub struct Disk<'a> {
    pub index: &'a Index,
    pub params: Params,
    pub space: Space,
    /// The graph's first node page.
    pub head: pg_sys::BlockNumber,
    /// Vectors read so far, for an insert's or a repair's repeated distances between nodes.
    cache: HashMap<ItemId, Vec<f32>>,
    keep_vectors: bool,
}

impl<'a> Disk<'a> {
    /// A graph for inserts and repairs (vectors kept while it lives).
    pub fn writer(
        index: &'a Index,
        params: Params,
        space: Space,
        head: pg_sys::BlockNumber,
    ) -> Self {
        Disk {
            index,
            params,
            space,
            head,
            cache: HashMap::new(),
            keep_vectors: true,
        }
    }

    /// A graph for a scan (each distance computed where the vector lies, nothing kept).
    pub fn reader(
        index: &'a Index,
        params: Params,
        space: Space,
        head: pg_sys::BlockNumber,
    ) -> Self {
        Disk {
            keep_vectors: false,
            ..Disk::writer(index, params, space, head)
        }
    }

    fn vector(&mut self, id: ItemId) -> &[f32] {
        if !self.cache.contains_key(&id) {
            let v = self
                .index
                .with_item(id, |bytes, _| match record::decode_element(bytes) {
                    Ok(e) => e.vector,
                    Err(_) => damaged("an element record does not decode"),
                });
            self.cache.insert(id, v);
        }
        &self.cache[&id]
    }

    /// The element at `id`: its heap row, its level, and whether it is live.
    pub fn element(&self, id: ItemId) -> (ItemId, usize, bool) {
        self.index
            .with_item(id, |bytes, live| match record::element_parts(bytes) {
                Ok((level, heap, _)) => (heap, usize::from(level), live),
                Err(_) => damaged("an element record does not decode"),
            })
    }

    fn lists(&self, id: ItemId) -> Vec<Vec<ItemId>> {
        let at = ItemId {
            block: id.block,
            offset: id.offset + 1,
        };
        self.index
            .with_item(at, |bytes, _| {
                record::decode_neighbours(&self.params, bytes)
            })
            .unwrap_or_else(|_| damaged("a neighbour record does not decode"))
    }
}

/// `query`'s score against the vector in `bytes` (little-endian f32s).
fn distance_to(space: Space, query: &[f32], bytes: &[u8]) -> f64 {
    if bytes.len() != 4 * query.len() {
        damaged("a vector of other dimensions");
    }
    match bytemuck::try_cast_slice::<u8, f32>(bytes) {
        Ok(v) if cfg!(target_endian = "little") => space.score(query, v),
        _ => {
            let v: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            space.score(query, &v)
        }
    }
}

impl Store for Disk<'_> {
    type Id = ItemId;
    type Error = Infallible;

    fn distance(&mut self, query: &[f32], id: ItemId) -> Result<f64, Infallible> {
        if self.keep_vectors {
            let space = self.space;
            return Ok(space.score(query, self.vector(id)));
        }
        let space = self.space;
        Ok(self
            .index
            .with_item(id, |bytes, _| match record::element_parts(bytes) {
                Ok((_, _, v)) => distance_to(space, query, v),
                Err(_) => damaged("an element record does not decode"),
            }))
    }

    fn distance_between(&mut self, a: ItemId, b: ItemId) -> Result<f64, Infallible> {
        let va = self.vector(a).to_vec();
        let space = self.space;
        let d = space.score(&va, self.vector(b));
        if !self.keep_vectors {
            self.cache.clear();
        }
        Ok(d)
    }

    fn neighbours(&mut self, id: ItemId, level: usize) -> Result<Vec<ItemId>, Infallible> {
        Ok(self.lists(id).into_iter().nth(level).unwrap_or_default())
    }

    fn set_neighbours(&mut self, id: ItemId, level: usize, n: &[ItemId]) -> Result<(), Infallible> {
        let mut lists = self.lists(id);
        let Some(list) = lists.get_mut(level) else {
            damaged("a link on a level the node does not have");
        };
        *list = n.to_vec();
        let bytes = record::encode_neighbours(&self.params, &lists)
            .unwrap_or_else(|_| damaged("a neighbour list too long"));
        self.index.overwrite(
            ItemId {
                block: id.block,
                offset: id.offset + 1,
            },
            &bytes,
        );
        Ok(())
    }

    fn all(&mut self) -> Result<Vec<ItemId>, Infallible> {
        Ok(self.index.nodes(self.head).0)
    }
}

//! One key's graph on the index's pages, as the graph algorithms see it
//! (`sealstore_core::graph::Store`): node ids are element places, vectors and neighbour lists
//! read from their records as they are needed, and opened in this backend's memory when the
//! graph is sealed ([`Sealer`]).

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;

use pgrx::pg_sys;
use rustc_hash::FxHashMap;
use sealstore_core::crypto::{OpenedF32, TenantId};
use sealstore_core::graph::record::{self, Element, ItemId, Kind, Place, RecordError};
use sealstore_core::graph::{Params, Space, Store};
use zeroize::Zeroizing;

use super::pages::{damaged, Index};
use crate::runtime::errors::{self, Error};
use crate::runtime::gucs;
use crate::runtime::keycache::{self, TenantKeys};

/// A record that does not open or decode: a failed authentication is the crypto layer's error
/// (XX001: tampered, moved, or under a key version that is gone); anything else is damage.
fn unreadable(e: RecordError) -> ! {
    match e {
        RecordError::Crypto(c) => errors::raise(Error::from(c)),
        _ => damaged("a record does not decode"),
    }
}

/// Sealed graphs' vectors opened in this backend, by index (its random id) and node. An element
/// record never changes once written (a REINDEX makes a new index id), so an opened vector stays
/// right for as long as the tenant's keys do: the cache is dropped whenever the key cache's
/// generation moves (a shred or rotation committed anywhere), and when it outgrows
/// `sealstore.hnsw_graph_memory`. Vectors are wiped when dropped.
#[derive(Default)]
struct Opened {
    generation: Option<keycache::Generation>,
    vectors: FxHashMap<([u8; 16], ItemId), Zeroizing<Vec<f32>>>,
    bytes: usize,
}

thread_local! {
    static OPENED: RefCell<Opened> = RefCell::new(Opened::default());
}

/// Drops the opened vectors if the keys they were opened with may have changed.
fn check_opened() {
    let generation = keycache::generation();
    OPENED.with_borrow_mut(|o| {
        if o.generation != Some(generation) {
            *o = Opened {
                generation: Some(generation),
                ..Opened::default()
            };
        }
    });
}

/// `f` of node `id`'s opened vector, if this backend has it.
fn with_opened<R>(index: &[u8; 16], id: ItemId, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    OPENED.with_borrow(|o| o.vectors.get(&(*index, id)).map(|v| f(v)))
}

/// Keeps node `id`'s opened vector.
fn keep_opened(index: &[u8; 16], id: ItemId, v: &[f32]) {
    let limit = usize::try_from(gucs::HNSW_GRAPH_MEMORY.get()).unwrap_or(0) * 1024;
    let cost = 4 * v.len() + 64;
    OPENED.with_borrow_mut(|o| {
        if o.bytes + cost > limit {
            o.vectors.clear();
            o.bytes = 0;
        }
        if cost <= limit {
            o.vectors.insert((*index, id), Zeroizing::new(v.to_vec()));
            o.bytes += cost;
        }
    });
}

/// The keys a sealed graph's records are sealed and opened with: its tenant's, as the key
/// cache holds them (so a shred that commits stops every backend's next read).
pub struct Sealer {
    pub tenant: TenantId,
    keys: Rc<TenantKeys>,
    index_id: [u8; 16],
}

impl Sealer {
    pub fn new(tenant: TenantId, keys: Rc<TenantKeys>, index_id: [u8; 16]) -> Sealer {
        check_opened();
        Sealer {
            tenant,
            keys,
            index_id,
        }
    }

    fn place(&self, node: ItemId, kind: Kind) -> Place {
        Place {
            index: self.index_id,
            at: node,
            kind,
        }
    }

    fn key_for(&self, version: u32) -> Option<&sealstore_core::crypto::DataKey> {
        self.keys.key(version).ok()
    }

    fn active(&self) -> &sealstore_core::crypto::DataKey {
        self.keys.active_key().unwrap_or_else(|e| errors::raise(e))
    }

    /// The lengths of a new node's two records.
    pub fn lengths(&self, params: &Params, dims: usize, level: usize) -> (usize, usize) {
        let algorithm = self.active().algorithm();
        (
            record::sealed_element_len(algorithm, dims),
            record::sealed_neighbours_len(algorithm, params, level),
        )
    }

    /// A new node's two records at `node`, under the active key version.
    pub fn seal_node(
        &self,
        node: ItemId,
        params: &Params,
        e: &Element,
        lists: &[Vec<ItemId>],
    ) -> (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>) {
        let key = self.active();
        let element = record::seal_element(key, &self.tenant, &self.place(node, Kind::Element), e)
            .unwrap_or_else(|e| unreadable(e));
        let neighbours = record::seal_neighbours(
            key,
            &self.tenant,
            &self.place(node, Kind::Neighbours),
            params,
            lists,
        )
        .unwrap_or_else(|e| unreadable(e));
        (Zeroizing::new(element), Zeroizing::new(neighbours))
    }

    /// `f` of node `node`'s vector: opened before in this backend, or opened from `read`'s
    /// record now (and kept).
    fn with_vector<R>(
        &self,
        node: ItemId,
        out: &mut OpenedF32,
        read: impl FnOnce(&mut dyn FnMut(&[u8])),
        f: impl FnOnce(&[f32]) -> R,
    ) -> R {
        let mut f = Some(f);
        if let Some(r) = with_opened(&self.index_id, node, |v| (f.take().expect("once"))(v)) {
            return r;
        }
        read(&mut |bytes| self.open_element(node, bytes, out));
        keep_opened(&self.index_id, node, out.as_slice());
        (f.take().expect("once"))(out.as_slice())
    }

    fn open_element(&self, node: ItemId, bytes: &[u8], out: &mut OpenedF32) {
        record::open_element_into(
            |v| self.key_for(v),
            &self.tenant,
            &self.place(node, Kind::Element),
            bytes,
            out,
        )
        .unwrap_or_else(|e| unreadable(e));
    }

    fn open_neighbours(&self, node: ItemId, params: &Params, bytes: &[u8]) -> Vec<Vec<ItemId>> {
        record::open_neighbours(
            |v| self.key_for(v),
            &self.tenant,
            &self.place(node, Kind::Neighbours),
            params,
            bytes,
        )
        .unwrap_or_else(|e| unreadable(e))
    }

    /// The node's neighbour record with new lists, under the key version it had (so that it
    /// keeps its length).
    fn reseal_neighbours(
        &self,
        node: ItemId,
        params: &Params,
        old: &[u8],
        lists: &[Vec<ItemId>],
    ) -> Vec<u8> {
        let version =
            record::sealed_version(old, Kind::Neighbours).unwrap_or_else(|e| unreadable(e));
        let key = self.keys.key(version).unwrap_or_else(|e| errors::raise(e));
        record::seal_neighbours(
            key,
            &self.tenant,
            &self.place(node, Kind::Neighbours),
            params,
            lists,
        )
        .unwrap_or_else(|e| unreadable(e))
    }
}

/// The two records of a new node at `node`, plaintext or sealed.
pub fn node_records(
    seal: Option<&Sealer>,
    node: ItemId,
    params: &Params,
    e: &Element,
    lists: &[Vec<ItemId>],
) -> (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>) {
    match seal {
        Some(s) => s.seal_node(node, params, e, lists),
        None => (
            record::encode_element(e).unwrap_or_else(|e| unreadable(e)),
            record::encode_neighbours(params, lists).unwrap_or_else(|e| unreadable(e)),
        ),
    }
}

/// The lengths of a new node's two records, plaintext or sealed.
pub fn node_lengths(
    seal: Option<&Sealer>,
    params: &Params,
    dims: usize,
    level: usize,
) -> (usize, usize) {
    match seal {
        Some(s) => s.lengths(params, dims, level),
        None => (
            record::element_len(dims),
            record::neighbours_len(params, level),
        ),
    }
}

/// The line of a node's neighbour record: the one after its element's.
fn neighbours_at(id: ItemId) -> ItemId {
    ItemId {
        block: id.block,
        offset: id.offset + 1,
    }
}

pub struct Disk<'a> {
    pub index: &'a Index,
    pub params: Params,
    pub space: Space,
    /// The graph's first node page.
    pub head: pg_sys::BlockNumber,
    seal: Option<Rc<Sealer>>,
    /// Vectors read so far, for an insert's or a repair's repeated distances between nodes.
    cache: FxHashMap<ItemId, Zeroizing<Vec<f32>>>,
    keep_vectors: bool,
    /// A scan's last opened vector (sealed graphs), wiped when the scan ends.
    opened: OpenedF32,
}

impl<'a> Disk<'a> {
    /// A graph for inserts and repairs (vectors kept while it lives).
    pub fn writer(
        index: &'a Index,
        params: Params,
        space: Space,
        head: pg_sys::BlockNumber,
        seal: Option<Rc<Sealer>>,
    ) -> Self {
        Disk {
            index,
            params,
            space,
            head,
            seal,
            cache: FxHashMap::default(),
            keep_vectors: true,
            opened: OpenedF32::default(),
        }
    }

    /// A graph for a scan (each distance computed where the vector lies, or where it was
    /// opened; nothing kept).
    pub fn reader(
        index: &'a Index,
        params: Params,
        space: Space,
        head: pg_sys::BlockNumber,
        seal: Option<Rc<Sealer>>,
    ) -> Self {
        Disk {
            keep_vectors: false,
            ..Disk::writer(index, params, space, head, seal)
        }
    }

    fn vector(&mut self, id: ItemId) -> &[f32] {
        if !self.cache.contains_key(&id) {
            let seal = self.seal.clone();
            let opened = &mut self.opened;
            let index = self.index;
            let v = match &seal {
                Some(s) => s.with_vector(
                    id,
                    opened,
                    |open| index.with_item(id, |bytes, _| open(bytes)),
                    |v| Zeroizing::new(v.to_vec()),
                ),
                None => index.with_item(id, |bytes, _| match record::decode_element(bytes) {
                    Ok(e) => Zeroizing::new(e.vector),
                    Err(e) => unreadable(e),
                }),
            };
            self.cache.insert(id, v);
        }
        &self.cache[&id]
    }

    /// A copy of node `id`'s vector (opened, for a sealed graph), wiped when dropped.
    pub fn vector_of(&mut self, id: ItemId) -> Zeroizing<Vec<f32>> {
        let v = Zeroizing::new(self.vector(id).to_vec());
        if !self.keep_vectors {
            self.cache.clear();
        }
        v
    }

    /// Replaces list `level` of node `id` (every list when `level` is none, from `all`).
    fn rewrite_lists(&self, id: ItemId, level: Option<usize>, all: &[Vec<ItemId>]) {
        let at = neighbours_at(id);
        let seal = self.seal.as_deref();
        let params = self.params;
        let bytes = self.index.with_item(at, |old, _| {
            let mut lists = match seal {
                Some(s) => s.open_neighbours(id, &params, old),
                None => record::decode_neighbours(&params, old).unwrap_or_else(|e| unreadable(e)),
            };
            match level {
                Some(l) => match (lists.get_mut(l), all.first()) {
                    (Some(list), Some(new)) => *list = new.clone(),
                    _ => damaged("a link on a level the node does not have"),
                },
                None if all.len() == lists.len() => lists = all.to_vec(),
                None => damaged("links on levels the node does not have"),
            }
            match seal {
                Some(s) => Zeroizing::new(s.reseal_neighbours(id, &params, old, &lists)),
                None => record::encode_neighbours(&params, &lists)
                    .unwrap_or_else(|_| damaged("a neighbour list too long")),
            }
        });
        self.index.overwrite(at, &bytes);
    }

    /// Replaces every neighbour list of node `id`.
    pub fn write_lists(&self, id: ItemId, lists: &[Vec<ItemId>]) {
        self.rewrite_lists(id, None, lists);
    }

    /// The element at `id`: its heap row, its level, and whether it is live (read without a
    /// key, also in a sealed graph).
    pub fn element(&self, id: ItemId) -> (ItemId, usize, bool) {
        self.index
            .with_item(id, |bytes, live| match record::element_head(bytes) {
                Ok((level, heap)) => (heap, usize::from(level), live),
                Err(e) => unreadable(e),
            })
    }

    /// The node's neighbour lists, one per level.
    pub fn lists(&self, id: ItemId) -> Vec<Vec<ItemId>> {
        self.index
            .with_item(neighbours_at(id), |bytes, _| match &self.seal {
                Some(s) => s.open_neighbours(id, &self.params, bytes),
                None => {
                    record::decode_neighbours(&self.params, bytes).unwrap_or_else(|e| unreadable(e))
                }
            })
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
        // Scored where the vector lies (or from the opened vectors), also while inserting: the
        // search for a new node's neighbours scores many nodes once each, and copying each
        // vector out first cost more than the distances.
        let space = self.space;
        let index = self.index;
        Ok(match &self.seal {
            Some(s) => s.with_vector(
                id,
                &mut self.opened,
                |open| index.with_item(id, |bytes, _| open(bytes)),
                |v| {
                    if v.len() != query.len() {
                        damaged("a vector of other dimensions");
                    }
                    space.score(query, v)
                },
            ),
            None => index.with_item(id, |bytes, _| match record::element_parts(bytes) {
                Ok((_, _, v)) => distance_to(space, query, v),
                Err(e) => unreadable(e),
            }),
        })
    }

    fn distance_between(&mut self, a: ItemId, b: ItemId) -> Result<f64, Infallible> {
        // Both vectors in the cache, then scored where they are (no copy per pair: the
        // neighbour selection of an insert scores thousands of pairs).
        self.vector(a);
        self.vector(b);
        let d = self.space.score(&self.cache[&a], &self.cache[&b]);
        if !self.keep_vectors {
            self.cache.clear();
        }
        Ok(d)
    }

    fn neighbours(&mut self, id: ItemId, level: usize) -> Result<Vec<ItemId>, Infallible> {
        Ok(self.lists(id).into_iter().nth(level).unwrap_or_default())
    }

    fn set_neighbours(&mut self, id: ItemId, level: usize, n: &[ItemId]) -> Result<(), Infallible> {
        self.rewrite_lists(id, Some(level), &[n.to_vec()]);
        Ok(())
    }

    fn all(&mut self) -> Result<Vec<ItemId>, Infallible> {
        Ok(self.index.nodes(self.head).0)
    }
}

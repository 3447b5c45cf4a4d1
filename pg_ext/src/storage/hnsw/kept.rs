//! Graphs kept in backend memory between scans: the second scan of a key's graph in a backend
//! reads it whole (`sealstore_core::graph::frozen`), and later scans walk it in memory
//! for as long as its version (in its directory entry, bumped by every change) is the one it
//! was read at. A walk over pages pins, locks and reads a buffer for every node it scores; in
//! memory it only scores.
//!
//! A sealed graph's copy is opened, so it lives in this backend only and goes when any tenant's
//! keys change (the key cache's generation), as the opened vectors do. All kept graphs fit in
//! `sealstore.hnsw_graph_memory`, first come first kept; a graph that would not fit beside them
//! is walked on its pages.

use std::cell::RefCell;
use std::rc::Rc;

use rustc_hash::{FxHashMap, FxHashSet};
use sealstore_core::graph::frozen::{Frozen, FrozenNode};

use super::disk::Disk;
use super::pages::{DirEntry, Index, Meta};
use super::Graph;
use crate::runtime::{gucs, keycache};

/// A graph in memory, shared by the kept set and the scans walking it.
pub type Shared = Rc<RefCell<Frozen>>;

#[derive(Default)]
struct Kept {
    generation: Option<keycache::Generation>,
    /// By index id and key: the graph and the version it was read at.
    graphs: FxHashMap<([u8; 16], [u8; 16]), (u64, Shared)>,
    bytes: usize,
    /// Graphs walked once on their pages: the second walk reads one whole, so that a connection
    /// that searches once (a script, a health check) never pays for reading a graph whole.
    walked: FxHashSet<([u8; 16], [u8; 16])>,
}

thread_local! {
    static KEPT: RefCell<Kept> = RefCell::new(Kept::default());
}

fn limit() -> usize {
    usize::try_from(gucs::HNSW_GRAPH_MEMORY.get()).unwrap_or(0) * 1024
}

/// The graph of `dir` in memory, kept or read now; none when it would not fit.
pub fn graph(index: &Index, meta: &Meta, dir: &DirEntry, g: &Graph, dims: usize) -> Option<Shared> {
    let generation = keycache::generation();
    let at = (meta.index_id, dir.key);
    let found = KEPT.with_borrow_mut(|k| {
        if k.generation != Some(generation) {
            *k = Kept {
                generation: Some(generation),
                ..Kept::default()
            };
        }
        match k.graphs.get(&at) {
            Some((version, f)) if *version == dir.version => Some(f.clone()),
            Some(_) => {
                let (_, old) = k.graphs.remove(&at).expect("present");
                k.bytes -= old.borrow().bytes();
                None
            }
            None => None,
        }
    });
    if found.is_some() {
        return found;
    }
    if KEPT.with_borrow_mut(|k| k.walked.insert(at)) {
        return None;
    }
    // A node is its vector and about 1.5 x 2m links of 6 bytes (with the upper levels').
    let per_node = 4 * dims + 48 + 9 * 2 * g.params.m + 64;
    let estimate = usize::try_from(dir.nodes)
        .unwrap_or(usize::MAX)
        .saturating_mul(per_node);
    // First come, first kept: a graph that does not fit beside the ones kept is walked on its
    // pages. (Dropping the others to make room would, with more tenants' graphs than room,
    // read a graph whole for nearly every query.)
    let limit = limit();
    let used = KEPT.with_borrow(|k| k.bytes);
    if dims == 0 || used.saturating_add(estimate) > limit {
        return None;
    }
    let mut disk = Disk::reader(index, g.params, g.space, dir.head, g.seal.clone());
    let (live, dead) = index.nodes(dir.head);
    let nodes: Vec<FrozenNode> = live
        .iter()
        .map(|&id| (id, true))
        .chain(dead.iter().map(|&id| (id, false)))
        .map(|(id, is_live)| {
            let (heap, _, _) = disk.element(id);
            let vector = disk.vector_of(id).to_vec();
            pgrx::check_for_interrupts!();
            FrozenNode {
                id,
                heap,
                live: is_live,
                vector,
                lists: disk.lists(id),
            }
        })
        .collect();
    let frozen = Frozen::new(g.space, dims, nodes);
    let bytes = frozen.bytes();
    let f = Rc::new(RefCell::new(frozen));
    KEPT.with_borrow_mut(|k| {
        // Read already: this scan walks it either way; it is kept if it fits.
        if k.bytes + bytes <= limit {
            k.graphs.insert(at, (dir.version, f.clone()));
            k.bytes += bytes;
        }
    });
    Some(f)
}

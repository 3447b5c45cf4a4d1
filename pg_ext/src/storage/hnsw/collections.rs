//! The graphs of `search()`: `sealstore.documents_graph` and `documents_sealed_graph`
//! (sql/hnsw.sql), one graph per collection, each with its collection's distance and
//! dimensions, the sealed one sealed with the collection's tenant's data key.
//!
//! An insert (or a build) finds the collection's description here; `search()` walks the
//! collection's graph through [`Walk`], which yields the heap rows of its nodes nearest first
//! for `collection_scan` to read with the statement's snapshot, filter and score exactly.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys;
use rustc_hash::FxHashMap;
use sealstore_core::crypto::{self, TenantId};
use sealstore_core::distance::Metric;
use sealstore_core::graph::record::ItemId;
use sealstore_core::graph::{self, Entry, Near};
use sealstore_core::ids::CollectionId;

use super::disk::{Disk, Sealer};
use super::kept;
use super::pages::{damaged, DirEntry, Index};
use super::{ef_search_setting, graph_of, invalid, Graph};
use crate::runtime::errors::{self, Error, Kind, OrRaise};
use crate::runtime::{gucs, keycache, owner};

/// What a graph of a collection is kept for: its tenant, distance and dimensions, and whether
/// its embeddings are sealed. A collection never changes them, so a backend keeps what it read.
#[derive(Clone, Copy)]
pub struct Described {
    pub tenant: [u8; 16],
    pub metric: Metric,
    pub dims: usize,
    pub encrypted: bool,
}

impl Described {
    /// Fills in a new directory entry for the collection.
    pub fn describe(&self, e: &mut DirEntry) {
        e.tenant = self.tenant;
        e.dims = self.dims as u32;
        e.strategy = match self.metric {
            Metric::L2 => 1,
            Metric::InnerProduct => 2,
            Metric::Cosine => 3,
            Metric::L1 => 4,
        };
        e.sealed = u8::from(self.encrypted);
    }
}

thread_local! {
    static DESCRIBED: RefCell<HashMap<[u8; 16], Described>> = RefCell::new(HashMap::new());
}

/// The collection `id`'s description, from `sealstore.collections` (read as the extension's
/// owner) or this backend's memory of it.
pub fn describe(id: &[u8; 16]) -> Described {
    if let Some(d) = DESCRIBED.with_borrow(|m| m.get(id).copied()) {
        return d;
    }
    let row = owner::owner_row(
        "SELECT tenant_id, metric, dims, encrypt_embeddings FROM sealstore.collections WHERE id = $1",
        &[pgrx::Uuid::from_bytes(*id).into()],
        |row| {
            Ok((
                row.get::<pgrx::Uuid>(1)?,
                row.get::<String>(2)?,
                row.get::<i32>(3)?,
                row.get::<bool>(4)?,
            ))
        },
    )
    .or_raise();
    let Some((Some(tenant), Some(metric), Some(dims), Some(encrypted))) = row else {
        errors::raise(errors::undefined("collection does not exist"));
    };
    let d = Described {
        tenant: *tenant.as_bytes(),
        metric: Metric::from_name(&metric).unwrap_or_else(|| {
            errors::raise(Error::damaged("a collection row names an unknown metric"))
        }),
        dims: usize::try_from(dims).unwrap_or(0),
        encrypted,
    };
    DESCRIBED.with_borrow_mut(|m| m.insert(*id, d));
    d
}

/// The plaintext of a document's sealed embedding, opened with its tenant's key as `search()`
/// opens it (bound to the document id); none when the tenant is shredded (its documents are
/// unreadable, so they are not indexed: a REINDEX or a restore goes on). An envelope that does
/// not open is XX001: a row is never left out in silence.
pub fn open_embedding(
    d: &Described,
    tenant: &[u8; 16],
    id: &[u8; 16],
    sealed: &[u8],
) -> Option<Vec<f32>> {
    if tenant != &d.tenant {
        errors::raise(Error::damaged(
            "a document's tenant is not its collection's",
        ));
    }
    let tenant = TenantId::from_bytes(*tenant);
    let keys = keycache::try_tenant_keys(&tenant).or_raise().ok()?;
    let header = crypto::parse_header(sealed).map_err(Error::from).or_raise();
    let mut opened = crypto::OpenedF32::default();
    crypto::open_f32_into(
        keys.key(header.key_version).or_raise(),
        &tenant,
        &crate::api::documents::embedding_context(id),
        sealed,
        &mut opened,
    )
    .map_err(Error::from)
    .or_raise();
    Some(opened.as_slice().to_vec())
}

/// Checks a collection's vector against its dimensions.
pub fn check_dims(d: &Described, dims: usize) {
    if d.dims != dims {
        errors::raise(Error::new(
            Kind::DataException,
            format!("expected {} dimensions, not {dims}", d.dims),
        ));
    }
}

/// A walk of one collection's graph for `search()`: its live nodes' heap rows, nearest first
/// (by the graph's vectors), then wider, then the rest, so that a caller that filters keeps
/// asking until it has `k`.
pub struct Walk {
    rel: pg_sys::Relation,
    graph: Graph,
    /// The graph in this backend's memory, when it is kept there.
    frozen: Option<kept::Shared>,
    head: pg_sys::BlockNumber,
    entry: Option<Entry<ItemId>>,
    scan: graph::Scan<ItemId>,
    done: bool,
    /// The first batch's size: `hnsw.ef_search`, or `k` if larger.
    pub first_batch: usize,
}

impl Walk {
    /// A walk of `collection`'s graph from `query` (prepared for the collection's distance),
    /// if the collection has a graph of at least `sealstore.hnsw_exact_below` nodes; none
    /// otherwise (the caller scores the collection's rows exactly).
    pub fn open(
        tenant: &TenantId,
        collection: &CollectionId,
        sealed: bool,
        query: &[f32],
        k: usize,
    ) -> Option<Walk> {
        let name = if sealed {
            c"documents_sealed_graph"
        } else {
            c"documents_graph"
        };
        // SAFETY: catalog lookups by name; the index is opened under AccessShareLock, which
        // the transaction keeps (closed with NoLock by `close`).
        unsafe {
            let nsp = pg_sys::get_namespace_oid(c"sealstore".as_ptr(), true);
            let oid = pg_sys::get_relname_relid(name.as_ptr(), nsp);
            if nsp == pg_sys::InvalidOid || oid == pg_sys::InvalidOid {
                return None;
            }
            let rel = pg_sys::index_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let idx = Index::new(rel);
            let meta = idx.meta();
            let exact_below = u64::try_from(gucs::HNSW_EXACT_BELOW.get()).unwrap_or(0);
            let found = (meta.per_collection == 1)
                .then(|| idx.find(collection.as_bytes()))
                .flatten()
                .filter(|(_, dir)| dir.nodes >= exact_below.max(1));
            let Some((_, dir)) = found else {
                pg_sys::index_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
                return None;
            };
            if &dir.tenant != tenant.as_bytes() {
                errors::raise(Error::damaged("a collection's graph is another tenant's"));
            }
            let graph = graph_of(&idx, &meta, &dir);
            let ef = ef_search_setting().unwrap_or_else(|e| invalid(e));
            // A zero query under cosine has no distance to walk by: scored exactly instead.
            let Some(prepared) = graph.space.prepare(query) else {
                pg_sys::index_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
                return None;
            };
            crate::storage::pages::count(rel, crate::storage::pages::Count::IndexScan);
            let frozen = kept::graph(&idx, &meta, &dir, &graph, dir.dims as usize);
            Some(Walk {
                rel,
                frozen,
                head: dir.head,
                entry: dir.entry().map(|(id, level)| Entry { id, level }),
                // An unlinked graph (below graph::LINK_AT) is scored exactly.
                scan: if dir.entry().is_some() {
                    graph::Scan::new(&prepared, ef.max(k))
                } else {
                    graph::Scan::exact(&prepared)
                },
                graph,
                done: false,
                first_batch: ef.max(k),
            })
        }
    }

    /// Appends the heap rows of up to `n` more live nodes to `out`, and their distances to the
    /// query to `distances` (by heap block and line: the graph's copy of a row's vector is the
    /// row's, normalised for cosine, so a row needs no scoring, and a sealed one no opening,
    /// again); false when the graph has none left.
    pub fn next_batch(
        &mut self,
        n: usize,
        out: &mut Vec<pg_sys::ItemPointerData>,
        distances: &mut FxHashMap<(u32, u16), f64>,
    ) -> bool {
        // SAFETY: the index is open for the walk's life.
        let idx = unsafe { Index::new(self.rel) };
        let mut disk = Disk::reader(
            &idx,
            self.graph.params,
            self.graph.space,
            self.head,
            self.graph.seal.clone(),
        );
        let mut frozen = self.frozen.as_ref().map(|f| f.borrow_mut());
        let mut taken = 0;
        while taken < n && !self.done {
            let next: Option<Near<ItemId>> = match frozen.as_deref_mut() {
                Some(f) => self
                    .scan
                    .next(f, self.entry)
                    .unwrap_or_else(|_| damaged("a scan wrote to a graph")),
                None => {
                    let Ok(next) = self.scan.next(&mut disk, self.entry);
                    next
                }
            };
            let Some(near) = next else {
                self.done = true;
                break;
            };
            let (heap, live) = match frozen.as_deref() {
                Some(f) => f
                    .element(near.id)
                    .unwrap_or_else(|| damaged("a node the graph does not have")),
                None => {
                    let (heap, _, live) = disk.element(near.id);
                    (heap, live)
                }
            };
            if live {
                out.push(crate::storage::heap::tid(heap.block, heap.offset));
                distances.insert(
                    (heap.block, heap.offset),
                    self.graph.space.distance(near.distance),
                );
                taken += 1;
            }
        }
        !self.done
    }

    /// The graph's index (open while the walk lives).
    pub fn relation(&self) -> pg_sys::Relation {
        self.rel
    }

    pub fn close(self) {
        // SAFETY: opened by `open`; the lock stays until the transaction ends.
        unsafe { pg_sys::index_close(self.rel, pg_sys::NoLock as pg_sys::LOCKMODE) };
    }
}

/// The keys of a sealed graph of `tenant`, or none when they cannot be had: the tenant is
/// shredded or unknown, or this server has no master key. VACUUM then marks removed rows' nodes
/// without relinking a graph it cannot read (and goes on with the table's other indexes).
pub fn sealer_if_usable(tenant: &[u8; 16], index_id: [u8; 16]) -> Option<Rc<Sealer>> {
    let tenant = TenantId::from_bytes(*tenant);
    let keys = keycache::try_tenant_keys(&tenant).ok()?.ok()?;
    Some(Rc::new(Sealer::new(tenant, keys, index_id)))
}

//! Building an hnsw index: every row into a graph in memory per key while they fit in
//! `maintenance_work_mem`, then each graph written out page by page (and the remaining rows
//! inserted on the pages, with a NOTICE, once they stop fitting); and an unlogged table's
//! empty index.

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::graph::memory::{place, MemoryGraph};
use sealstore_core::graph::record::{Element, ItemId};
use sealstore_core::graph::{Params, Space};

use super::collections::Described;
use super::pages::{self, damaged, Index, Meta};
use super::*;
use crate::runtime::errors::OrRaise;

/// A build's graphs, in memory while they fit.
struct Build {
    index: Index,
    shape: Shape,
    meta: Meta,
    params: Params,
    /// Per key: its collection (an index of collections) and its graph.
    graphs: Vec<([u8; 16], Option<Described>, MemoryGraph)>,
    bytes: usize,
    limit: usize,
    on_disk: bool,
    indexed: f64,
    row_cx: pg_sys::MemoryContext,
}

impl Build {
    fn add(&mut self, row: RowInput, heap: ItemId) {
        if self.shape.form == Form::Column {
            check_dims(&self.index, &mut self.meta, row.vector.len());
        }
        self.indexed += 1.0;
        if self.on_disk {
            insert_on_disk(&self.index, &self.meta, &row, heap);
            return;
        }
        let level = random_level(&self.params);
        let i = match self.graphs.iter().position(|(k, _, _)| *k == row.key) {
            Some(i) => i,
            None => {
                let space = match &row.collection {
                    Some(d) => Space::new(d.metric),
                    None => Space::new(metric_of(self.meta.strategy)),
                };
                self.graphs.push((
                    row.key,
                    row.collection,
                    MemoryGraph::new(space, row.vector.len()),
                ));
                self.graphs.len() - 1
            }
        };
        let g = &mut self.graphs[i].2;
        let before = g.bytes();
        g.add(&self.params, heap, &row.vector, level);
        self.bytes += g.bytes() - before;
        if self.bytes > self.limit {
            pgrx::ereport!(
                NOTICE,
                PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
                format!(
                    "hnsw graph no longer fits into maintenance_work_mem after {} rows",
                    self.indexed
                ),
                "The rest of the build inserts into the index's pages, which takes significantly more time; increase maintenance_work_mem to build faster."
            );
            self.flush();
            self.on_disk = true;
        }
    }

    /// Writes every graph in memory to pages and its directory entry.
    fn flush(&mut self) {
        let graphs = std::mem::take(&mut self.graphs);
        for (key, described, g) in &graphs {
            write_graph(&self.index, &self.meta, key, described.as_ref(), g);
        }
        self.bytes = 0;
    }
}

/// Writes one key's graph built in memory to new pages at the end of the index (sealed, for a
/// sealed collection, each record at its place).
fn write_graph(
    index: &Index,
    meta: &Meta,
    key: &[u8; 16],
    described: Option<&Described>,
    g: &MemoryGraph,
) {
    if g.is_empty() {
        return;
    }
    let (dir_at, dir) = index.find_or_add(key, |e| {
        if let Some(d) = described {
            d.describe(e);
        }
    });
    let graph = graph_of(index, meta, &dir);
    let params = &graph.params;
    let seal = graph.seal.as_deref();
    let n = g.len() as u32;
    let dims = g.vector(0).len();
    let sizes = (0..n).map(|id| disk::node_lengths(seal, params, dims, g.lists(id).len() - 1));
    let first = index.blocks();
    let placed = place(sizes, first, pages::usable_bytes()).unwrap_or_else(|_| {
        invalid("vector too large for an hnsw index page: use fewer dimensions")
    });
    let last = placed.last().map(|p| p.block).unwrap_or(first);
    let mut id = 0usize;
    for block in first..=last {
        let buf = index.extend();
        // SAFETY: a new page, exclusively locked, initialised under its record.
        unsafe {
            if pg_sys::BufferGetBlockNumber(buf) != block {
                damaged("the index grew while it was built");
            }
            let mut x = pages::Xlog::start(index.rel);
            let page = x.page(buf, true);
            pages::init_page(page, pages::KIND_NODES);
            if block < last {
                (*pages::opaque(page)).next = block + 1;
            }
            while id < placed.len() && placed[id].block == block {
                let node = id as u32;
                let element = Element {
                    level: (g.lists(node).len() - 1) as u8,
                    heap: g.heap(node),
                    vector: g.vector(node).to_vec(),
                };
                let lists: Vec<Vec<ItemId>> = g
                    .lists(node)
                    .iter()
                    .map(|l| l.iter().map(|&n| placed[n as usize]).collect())
                    .collect();
                let (element, neighbours) =
                    disk::node_records(seal, placed[id], params, &element, &lists);
                let at = pages::add_item(page, element.as_ptr(), element.len());
                pages::add_item(page, neighbours.as_ptr(), neighbours.len());
                if at != placed[id].offset {
                    damaged("a node placed elsewhere than planned");
                }
                id += 1;
            }
            x.finish();
            pg_sys::UnlockReleaseBuffer(buf);
        }
        pgrx::check_for_interrupts!();
    }
    let entry = g.entry().map(|e| (placed[e.id as usize], e.level));
    index.update_entry(dir_at, |e| {
        e.head = first;
        e.tail = last;
        e.nodes = u64::from(n);
        e.set_entry(entry);
    });
}

/// A new index's metapage: its options, distance and form, and a new random id (what its
/// sealed records are bound to).
///
/// # Safety
/// `index` is an open hnsw index of `shape`.
unsafe fn describe_meta(m: &mut Meta, index: pg_sys::Relation, shape: Shape, params: &Params) {
    m.m = params.m as u32;
    m.ef_construction = params.ef_construction as u32;
    // SAFETY: per the contract.
    m.strategy = unsafe { strategy_of(index, shape.vector_att) }.unwrap_or(0);
    m.keyed = u32::from(shape.key.is_some());
    m.per_collection = u32::from(shape.form != Form::Column);
    m.index_id = *sealstore_core::crypto::random_bytes::<16>().or_raise();
}

/// CREATE INDEX (and REINDEX): checks the definition, writes the metapage, builds the graphs.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn build(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    // SAFETY: PostgreSQL passes an open heap, its new empty index and the index's description.
    unsafe {
        if !(*info).ii_Predicate.is_null() {
            unsupported("an hnsw index cannot be partial");
        }
        for i in 0..(*info).ii_NumIndexAttrs as usize {
            if (*info).ii_IndexAttrNumbers[i] <= 0 {
                unsupported("an hnsw index is on columns, not expressions");
            }
        }
        let shape = shape(index);
        check_table(index, shape);
        let params = params_of(index);
        let idx = Index::new(index);
        idx.create_meta(|m| describe_meta(m, index, shape, &params));
        let mut state = Build {
            index: idx,
            shape,
            meta: idx.meta(),
            params,
            graphs: Vec::new(),
            bytes: 0,
            limit: usize::try_from(pg_sys::maintenance_work_mem).unwrap_or(65536) * 1024,
            on_disk: false,
            indexed: 0.0,
            row_cx: pg_sys::AllocSetContextCreateInternal(
                pg_sys::CurrentMemoryContext,
                c"sealstore hnsw build row".as_ptr(),
                0,
                8 * 1024,
                8 * 1024 * 1024,
            ),
        };
        let scanned = pg_sys::table_index_build_scan(
            heap,
            index,
            info,
            true,
            true,
            Some(build_row),
            std::ptr::addr_of_mut!(state).cast(),
            std::ptr::null_mut(),
        );
        state.flush();
        let mut result = PgBox::<pg_sys::IndexBuildResult>::alloc0();
        result.heap_tuples = scanned;
        result.index_tuples = state.indexed;
        result.into_pg()
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn build_row(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: `state` is the Build that `build` passed; values and nulls cover the columns.
    unsafe {
        let state = &mut *state.cast::<Build>();
        let old = pg_sys::MemoryContextSwitchTo(state.row_cx);
        if let Some(row) = row_input(state.shape, state.meta.strategy, values, isnull) {
            state.add(row, heap_item(&*tid));
        }
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::MemoryContextReset(state.row_cx);
    }
}

/// An unlogged table's empty index (its init fork).
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn build_empty(index: pg_sys::Relation) {
    // SAFETY: the index is open; its init fork gets the metapage of an empty index.
    unsafe {
        let shape = shape(index);
        check_table(index, shape);
        let params = params_of(index);
        let buf = pg_sys::ReadBufferExtended(
            index,
            pg_sys::ForkNumber::INIT_FORKNUM,
            pg_sys::InvalidBlockNumber,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        );
        pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        let mut x = pages::Xlog::start(index);
        let page = x.page(buf, true);
        pages::init_page(page, pages::KIND_META);
        let meta = pages::new_meta(|m| describe_meta(m, index, shape, &params));
        pages::write_meta(page, meta);
        x.finish();
        pg_sys::UnlockReleaseBuffer(buf);
        // The relation is unlogged, so the generic record wrote no WAL; the init fork must be
        // logged all the same (crash recovery resets the index from it). It locks the page
        // itself.
        pg_sys::log_newpage_range(index, pg_sys::ForkNumber::INIT_FORKNUM, 0, 1, true);
    }
}

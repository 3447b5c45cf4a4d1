//! `hnsw`: the approximate index access method, with pgvector's DDL (`USING hnsw`, the
//! operator classes `vector_l2_ops`, `vector_ip_ops`, `vector_cosine_ops`, `vector_l1_ops`,
//! `WITH (m, ef_construction)`, `SET hnsw.ef_search`), and one graph per key value:
//! `USING hnsw (tenant_id, embedding vector_cosine_ops)` keeps a separate graph per tenant, and
//! a scan with `tenant_id = $1` (given by the query or by the tenant isolation policy) walks
//! that tenant's graph only.
//!
//! The graph algorithms are `sealstore_core::graph`; this module is the glue: the pages
//! (`pages.rs`), one key's graph as the algorithms see it (`disk.rs`), and PostgreSQL's index
//! callbacks below. A build inserts every row into graphs in memory while they fit in
//! `maintenance_work_mem`, then writes them out page by page (and goes on inserting on disk,
//! with a NOTICE, if they stop fitting). A scan yields every node of its graph once, the
//! nearest first, then wider walks, then the rest by exact distance, so a query whose other
//! conditions reject rows is never short; a graph below `sealstore.hnsw_exact_below` nodes is
//! searched exactly from the start.
//!
//! NULL vectors, and zero vectors under the cosine distance (which has no value for them), are
//! not indexed, as in pgvector; nor are rows whose key is NULL.

mod disk;
mod pages;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use sealstore_core::distance::Metric;
use sealstore_core::graph::memory::{place, MemoryGraph};
use sealstore_core::graph::record::{self, Element, ItemId};
use sealstore_core::graph::{self, Entry, Near, Params, Space};

use self::disk::Disk;
use self::pages::{damaged, Index, Meta};
use crate::runtime::errors::{self, Error, Kind, OrRaise};
use crate::runtime::gucs;
use crate::storage::vector;

/// The operator classes' strategy numbers (sql/hnsw.sql), as the flat index's.
fn metric_of(strategy: u32) -> Metric {
    match strategy {
        1 => Metric::L2,
        2 => Metric::InnerProduct,
        3 => Metric::Cosine,
        4 => Metric::L1,
        _ => damaged("an unknown operator class"),
    }
}

fn invalid(message: impl Into<String>) -> ! {
    errors::raise(Error::new(Kind::InvalidArgument, message.into()))
}

fn unsupported(message: &'static str) -> ! {
    errors::raise(Error::new(Kind::FeatureNotSupported, message))
}

/// `WITH (m, ef_construction)`, as `build_reloptions` lays them out.
#[repr(C)]
struct Options {
    vl_len_: i32,
    m: i32,
    ef_construction: i32,
}

static mut RELOPT_KIND: pg_sys::relopt_kind::Type = 0;

/// Registers the storage parameters (from `_PG_init`).
pub fn init() {
    // SAFETY: library load runs single-threaded; the names and descriptions are static.
    unsafe {
        RELOPT_KIND = pg_sys::add_reloption_kind();
        pg_sys::add_int_reloption(
            RELOPT_KIND as _,
            c"m".as_ptr(),
            c"Links per node on the graph's upper levels (twice as many on level 0)".as_ptr(),
            16,
            graph::M_RANGE.0 as i32,
            graph::M_RANGE.1 as i32,
            pg_sys::AccessExclusiveLock as i32,
        );
        pg_sys::add_int_reloption(
            RELOPT_KIND as _,
            c"ef_construction".as_ptr(),
            c"Candidates collected on each level when a node is inserted".as_ptr(),
            64,
            graph::EF_CONSTRUCTION_RANGE.0 as i32,
            graph::EF_CONSTRUCTION_RANGE.1 as i32,
            pg_sys::AccessExclusiveLock as i32,
        );
    }
}

/// The index AM handler: what `CREATE ACCESS METHOD hnsw` names. Its C name is not pgvector's
/// `hnsw_handler`, so that both libraries can be loaded in one backend (pgvector in another
/// database of the cluster).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sealstore_hnsw_handler(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let mut am = unsafe {
        // SAFETY: a zeroed node of the right size, tagged as PostgreSQL's makeNode does.
        PgBox::<pg_sys::IndexAmRoutine>::alloc_node(pg_sys::NodeTag::T_IndexAmRoutine)
    };
    am.amstrategies = 4;
    am.amsupport = 0;
    am.amoptsprocnum = 0;
    am.amcanorder = false;
    am.amcanorderbyop = true;
    am.amcanbackward = false;
    am.amcanunique = false;
    am.amcanmulticol = true;
    am.amoptionalkey = true;
    am.amsearcharray = false;
    am.amsearchnulls = false;
    am.amstorage = false;
    am.amclusterable = false;
    am.ampredlocks = false;
    am.amcanparallel = false;
    am.amcaninclude = false;
    am.amusemaintenanceworkmem = true;
    am.amparallelvacuumoptions = 0;
    am.amkeytype = pg_sys::InvalidOid;

    am.ambuild = Some(build);
    am.ambuildempty = Some(build_empty);
    am.aminsert = Some(insert);
    am.ambulkdelete = Some(bulk_delete);
    am.amvacuumcleanup = Some(vacuum_cleanup);
    am.amcostestimate = Some(cost_estimate);
    am.amoptions = Some(options);
    am.amvalidate = Some(validate);
    am.ambeginscan = Some(begin_scan);
    am.amrescan = Some(rescan);
    am.amgettuple = Some(get_tuple);
    am.amendscan = Some(end_scan);
    am.into_pg().into()
}

/// The V1 calling convention record of `sealstore_hnsw_handler`.
#[no_mangle]
pub extern "C" fn pg_finfo_sealstore_hnsw_handler() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[pg_guard]
unsafe extern "C-unwind" fn options(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    let table = [
        pg_sys::relopt_parse_elt {
            optname: c"m".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(Options, m) as i32,
        },
        pg_sys::relopt_parse_elt {
            optname: c"ef_construction".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(Options, ef_construction) as i32,
        },
    ];
    // SAFETY: the table describes `Options`; PostgreSQL parses and checks the values.
    unsafe {
        pg_sys::build_reloptions(
            reloptions,
            validate,
            RELOPT_KIND,
            std::mem::size_of::<Options>(),
            table.as_ptr(),
            table.len() as i32,
        )
        .cast()
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn validate(_opclass: pg_sys::Oid) -> bool {
    true
}

/// The key column's type: the values a graph is kept for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Uuid,
    Int4,
    Int8,
}

/// What an index is: its key column (if any), its vector column, its metric and options.
#[derive(Clone, Copy)]
struct Shape {
    key: Option<KeyType>,
    /// The vector column's position among the index's columns (0 or 1).
    vector_att: usize,
}

/// # Safety
/// `index` is an open hnsw index.
unsafe fn shape(index: pg_sys::Relation) -> Shape {
    // SAFETY: per the contract.
    unsafe {
        let natts = (*(*index).rd_index).indnatts as usize;
        let desc = (*index).rd_att;
        let att_type = |i: usize| (*(*desc).attrs.as_ptr().add(i)).atttypid;
        let vector_att = natts - 1;
        if natts > 2 {
            unsupported("an hnsw index has a vector column and at most one key column before it");
        }
        if att_type(vector_att) != vector::type_oid() {
            unsupported("the last column of an hnsw index must be a vector");
        }
        let key = (natts == 2).then(|| match att_type(0) {
            pg_sys::UUIDOID => KeyType::Uuid,
            pg_sys::INT4OID => KeyType::Int4,
            pg_sys::INT8OID => KeyType::Int8,
            _ => unsupported("an hnsw index's key column must be uuid, integer or bigint"),
        });
        Shape { key, vector_att }
    }
}

/// The 16 bytes that name a key value's graph.
///
/// # Safety
/// `datum` is a non-null value of type `kind`.
unsafe fn key_bytes(kind: KeyType, datum: pg_sys::Datum) -> [u8; 16] {
    let mut out = [0u8; 16];
    // SAFETY: per the contract (a uuid datum points at 16 bytes).
    unsafe {
        match kind {
            KeyType::Uuid => {
                out.copy_from_slice(std::slice::from_raw_parts(datum.cast_mut_ptr::<u8>(), 16))
            }
            KeyType::Int4 => out[..4].copy_from_slice(&(datum.value() as i32).to_be_bytes()),
            KeyType::Int8 => out[..8].copy_from_slice(&(datum.value() as i64).to_be_bytes()),
        }
    }
    out
}

/// The key bytes a scan key's value names, converting a cross-type integer (`int4_col = int8`)
/// to the column's type; none when no value of the column's type equals it.
///
/// # Safety
/// `datum` is a non-null value of type `subtype` (or of the column's type when it is invalid).
unsafe fn scan_key_bytes(
    kind: KeyType,
    datum: pg_sys::Datum,
    subtype: pg_sys::Oid,
) -> Option<[u8; 16]> {
    let value: i64 = match subtype {
        pg_sys::INT2OID => i64::from(datum.value() as i16),
        pg_sys::INT4OID => i64::from(datum.value() as i32),
        pg_sys::INT8OID => datum.value() as i64,
        // SAFETY: per the contract: a value of the column's own type.
        _ => return Some(unsafe { key_bytes(kind, datum) }),
    };
    match kind {
        KeyType::Int4 => {
            let v = i32::try_from(value).ok()?;
            // SAFETY: an int4 datum by value.
            Some(unsafe { key_bytes(kind, pg_sys::Datum::from(v)) })
        }
        // SAFETY: an int8 datum by value.
        KeyType::Int8 => Some(unsafe { key_bytes(kind, pg_sys::Datum::from(value)) }),
        KeyType::Uuid => None,
    }
}

/// The strategy of the vector column's operator class (which distance it orders by).
///
/// # Safety
/// `index` is an open hnsw index.
unsafe fn strategy_of(index: pg_sys::Relation, att: usize) -> u32 {
    // SAFETY: per the contract.
    unsafe {
        let family = *(*index).rd_opfamily.add(att);
        let input = *(*index).rd_opcintype.add(att);
        (1..=4u16)
            .find(|&s| {
                pg_sys::get_opfamily_member(family, input, input, s as i16) != pg_sys::InvalidOid
            })
            .map(u32::from)
            .unwrap_or_else(|| damaged("an operator class without a distance"))
    }
}

/// The options of an index, checked.
///
/// # Safety
/// `index` is an open hnsw index.
unsafe fn params_of(index: pg_sys::Relation) -> Params {
    // SAFETY: per the contract: rd_options is null or what `options` built.
    let (m, ef) = unsafe {
        let o = (*index).rd_options.cast::<Options>();
        if o.is_null() {
            (16, 64)
        } else {
            ((*o).m, (*o).ef_construction)
        }
    };
    Params::new(i64::from(m), i64::from(ef)).unwrap_or_else(|e| invalid(e.to_string()))
}

fn params_from(meta: &Meta) -> Params {
    Params::new(i64::from(meta.m), i64::from(meta.ef_construction))
        .unwrap_or_else(|_| damaged("options out of range"))
}

/// A vector as its graph keeps it, or none (NULL, or zero under cosine).
fn indexable(value: Option<&[f32]>, space: Space) -> Option<Vec<f32>> {
    space.prepare(value?)
}

fn random_level(params: &Params) -> usize {
    let bytes = sealstore_core::crypto::random_bytes::<8>().or_raise();
    let u = ((u64::from_le_bytes(*bytes) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    params.level_for(u)
}

fn heap_item(tid: &pg_sys::ItemPointerData) -> ItemId {
    ItemId {
        block: crate::storage::heap::tid_block(tid),
        offset: tid.ip_posid,
    }
}

/// Checks a vector against the index's dimensions, setting them on the first one.
fn check_dims(index: &Index, meta: &mut Meta, dims: usize) {
    if meta.dims as usize == dims {
        return;
    }
    if meta.dims == 0 {
        index.update_meta(|m| {
            if m.dims == 0 {
                m.dims = dims as u32;
            }
            *meta = *m;
        });
    }
    if meta.dims as usize != dims {
        errors::raise(Error::new(
            Kind::DataException,
            format!("expected {} dimensions, not {dims}", meta.dims),
        ));
    }
}

/// Inserts one row's node into its key's graph on disk.
fn insert_on_disk(index: &Index, meta: &Meta, key: &[u8; 16], heap: ItemId, v: &[f32]) {
    let params = params_from(meta);
    let space = Space::new(metric_of(meta.strategy));
    index.lock_key(key, false);
    let (dir_at, _) = index.find_or_add(key);
    let level = random_level(&params);
    let element = record::encode_element(&Element {
        level: level as u8,
        heap,
        vector: v.to_vec(),
    })
    .unwrap_or_else(|_| invalid("vector too large for an hnsw index"));
    let neighbours = record::encode_neighbours(&params, &vec![Vec::new(); level + 1]).or_damaged();
    let id = index.append_node(dir_at, &element, &neighbours);
    let dir = index.entry_at(dir_at);
    let mut disk = Disk::writer(index, params, space, dir.head);
    let entry = dir.entry().map(|(id, level)| Entry { id, level });
    let Ok(entry) = graph::insert(&mut disk, &params, entry, id, v, level);
    index.update_entry(dir_at, |e| {
        e.nodes += 1;
        e.set_entry(Some((entry.id, entry.level)));
    });
    index.lock_key(key, true);
}

trait OrDamaged<T> {
    fn or_damaged(self) -> T;
}

impl<T, E> OrDamaged<T> for std::result::Result<T, E> {
    fn or_damaged(self) -> T {
        self.unwrap_or_else(|_| damaged("a record does not encode"))
    }
}

/// A build's graphs, in memory while they fit.
struct Build {
    index: Index,
    shape: Shape,
    meta: Meta,
    params: Params,
    space: Space,
    graphs: Vec<([u8; 16], MemoryGraph)>,
    bytes: usize,
    limit: usize,
    on_disk: bool,
    rows: f64,
    indexed: f64,
    row_cx: pg_sys::MemoryContext,
}

impl Build {
    fn add(&mut self, key: [u8; 16], heap: ItemId, v: &[f32]) {
        check_dims(&self.index, &mut self.meta, v.len());
        self.indexed += 1.0;
        if self.on_disk {
            insert_on_disk(&self.index, &self.meta, &key, heap, v);
            return;
        }
        let level = random_level(&self.params);
        let i = match self.graphs.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.graphs
                    .push((key, MemoryGraph::new(self.space, v.len())));
                self.graphs.len() - 1
            }
        };
        let g = &mut self.graphs[i].1;
        let before = g.bytes();
        g.add(&self.params, heap, v, level);
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
        for (key, g) in &graphs {
            write_graph(&self.index, &self.params, key, g);
        }
        self.bytes = 0;
    }
}

/// Writes one key's graph built in memory to new pages at the end of the index.
fn write_graph(index: &Index, params: &Params, key: &[u8; 16], g: &MemoryGraph) {
    if g.is_empty() {
        return;
    }
    let n = g.len() as u32;
    let dims = g.vector(0).len();
    let sizes = (0..n).map(|id| {
        (
            record::element_len(dims),
            record::neighbours_len(params, g.lists(id).len() - 1),
        )
    });
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
                let element = record::encode_element(&Element {
                    level: (g.lists(node).len() - 1) as u8,
                    heap: g.heap(node),
                    vector: g.vector(node).to_vec(),
                })
                .or_damaged();
                let lists: Vec<Vec<ItemId>> = g
                    .lists(node)
                    .iter()
                    .map(|l| l.iter().map(|&n| placed[n as usize]).collect())
                    .collect();
                let neighbours = record::encode_neighbours(params, &lists).or_damaged();
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
    let (dir_at, _) = index.find_or_add(key);
    let entry = g.entry().map(|e| (placed[e.id as usize], e.level));
    index.update_entry(dir_at, |e| {
        e.head = first;
        e.tail = last;
        e.nodes = u64::from(n);
        e.set_entry(entry);
    });
}

/// CREATE INDEX (and REINDEX): checks the definition, writes the metapage, builds the graphs.
#[pg_guard]
unsafe extern "C-unwind" fn build(
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
        let params = params_of(index);
        let strategy = strategy_of(index, shape.vector_att);
        let idx = Index::new(index);
        let index_id = sealstore_core::crypto::random_bytes::<16>().or_raise();
        idx.create_meta(|m| {
            m.m = params.m as u32;
            m.ef_construction = params.ef_construction as u32;
            m.strategy = strategy;
            m.keyed = u32::from(shape.key.is_some());
            m.index_id = *index_id;
        });
        let mut state = Build {
            index: idx,
            shape,
            meta: idx.meta(),
            params,
            space: Space::new(metric_of(strategy)),
            graphs: Vec::new(),
            bytes: 0,
            limit: usize::try_from(pg_sys::maintenance_work_mem).unwrap_or(65536) * 1024,
            on_disk: false,
            rows: 0.0,
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
        state.rows += 1.0;
        let shape = state.shape;
        let Some(key) = row_key(shape, values, isnull) else {
            return;
        };
        let old = pg_sys::MemoryContextSwitchTo(state.row_cx);
        let value = vector::VectorArg::from_datum(
            *values.add(shape.vector_att),
            *isnull.add(shape.vector_att),
        );
        if let Some(v) = indexable(value.as_ref().map(|v| v.0), state.space) {
            state.add(key, heap_item(&*tid), &v);
        }
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::MemoryContextReset(state.row_cx);
    }
}

/// The row's key bytes (zeros without a key column), or none when its key is NULL.
///
/// # Safety
/// `values` and `isnull` cover the index's columns.
unsafe fn row_key(shape: Shape, values: *mut pg_sys::Datum, isnull: *mut bool) -> Option<[u8; 16]> {
    // SAFETY: per the contract.
    unsafe {
        match shape.key {
            None => Some([0; 16]),
            Some(_) if *isnull => None,
            Some(kind) => Some(key_bytes(kind, *values)),
        }
    }
}

/// An unlogged table's empty index (its init fork).
#[pg_guard]
unsafe extern "C-unwind" fn build_empty(index: pg_sys::Relation) {
    // SAFETY: the index is open; its init fork gets the metapage of an empty index.
    unsafe {
        let shape = shape(index);
        let params = params_of(index);
        let strategy = strategy_of(index, shape.vector_att);
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
        let meta = pages::new_meta(|m| {
            m.m = params.m as u32;
            m.ef_construction = params.ef_construction as u32;
            m.strategy = strategy;
            m.keyed = u32::from(shape.key.is_some());
            m.index_id = *sealstore_core::crypto::random_bytes::<16>().or_raise();
        });
        pages::write_meta(page, meta);
        x.finish();
        pg_sys::UnlockReleaseBuffer(buf);
        // The relation is unlogged, so the generic record wrote no WAL; the init fork must be
        // logged all the same (crash recovery resets the index from it). It locks the page
        // itself.
        pg_sys::log_newpage_range(index, pg_sys::ForkNumber::INIT_FORKNUM, 0, 1, true);
    }
}

// The signature is PostgreSQL's (aminsert_function).
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn insert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    _unchanged: bool,
    _info: *mut pg_sys::IndexInfo,
) -> bool {
    // SAFETY: PostgreSQL passes the open index, the row's index values and its TID.
    unsafe {
        let shape = shape(index);
        let Some(key) = row_key(shape, values, isnull) else {
            return false;
        };
        let idx = Index::new(index);
        let mut meta = idx.meta();
        let value = vector::VectorArg::from_datum(
            *values.add(shape.vector_att),
            *isnull.add(shape.vector_att),
        );
        let Some(v) = indexable(
            value.as_ref().map(|v| v.0),
            Space::new(metric_of(meta.strategy)),
        ) else {
            return false;
        };
        check_dims(&idx, &mut meta, v.len());
        insert_on_disk(&idx, &meta, &key, heap_item(&*tid), &v);
        false
    }
}

/// VACUUM: marks the nodes of removed rows deleted, relinks their neighbours, and moves the
/// entry point off a deleted node.
#[pg_guard]
unsafe extern "C-unwind" fn bulk_delete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: VACUUM passes the open index and the callback that says which TIDs are gone.
    unsafe {
        let stats = if stats.is_null() {
            PgBox::<pg_sys::IndexBulkDeleteResult>::alloc0().into_pg()
        } else {
            stats
        };
        let idx = Index::new((*info).index);
        let meta = idx.meta();
        let params = params_from(&meta);
        let space = Space::new(metric_of(meta.strategy));
        let Some(callback) = callback else {
            return stats;
        };
        for (dir_at, dir) in idx.entries() {
            idx.lock_key(&dir.key, false);
            let dir = idx.entry_at(dir_at);
            let mut disk = Disk::writer(&idx, params, space, dir.head);
            let (live, _) = idx.nodes(dir.head);
            let mut gone = std::collections::HashSet::new();
            for &id in &live {
                let (heap, _, _) = disk.element(id);
                let mut tid = crate::storage::heap::tid(heap.block, heap.offset);
                if callback(&mut tid, callback_state) {
                    gone.insert(id);
                }
            }
            if !gone.is_empty() {
                let deleted = |id: ItemId| gone.contains(&id);
                let mut top: Option<(ItemId, usize)> = None;
                for &id in &live {
                    if deleted(id) {
                        continue;
                    }
                    let (_, level, _) = disk.element(id);
                    for l in 0..=level {
                        let Ok(_) = graph::repair(&mut disk, &params, id, l, &deleted);
                    }
                    if top.is_none_or(|(_, t)| level > t) {
                        top = Some((id, level));
                    }
                    pg_sys::vacuum_delay_point();
                }
                let mut by_block: std::collections::BTreeMap<u32, Vec<u16>> = Default::default();
                for id in &gone {
                    by_block.entry(id.block).or_default().push(id.offset);
                }
                for (block, offsets) in by_block {
                    idx.mark_dead(block, &offsets);
                }
                let entry_gone = dir.entry().is_some_and(|(at, _)| deleted(at));
                idx.update_entry(dir_at, |e| {
                    e.nodes = (live.len() - gone.len()) as u64;
                    if entry_gone {
                        e.set_entry(top);
                    }
                });
                (*stats).tuples_removed += gone.len() as f64;
            }
            (*stats).num_index_tuples += (live.len() - gone.len()) as f64;
            idx.lock_key(&dir.key, true);
        }
        (*stats).num_pages = idx.blocks();
        stats
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn vacuum_cleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: VACUUM passes the open index; `stats` is null or what bulk_delete returned.
    unsafe {
        if (*info).analyze_only {
            return stats;
        }
        if !stats.is_null() {
            return stats;
        }
        let stats = PgBox::<pg_sys::IndexBulkDeleteResult>::alloc0().into_pg();
        let idx = Index::new((*info).index);
        for (_, dir) in idx.entries() {
            (*stats).num_index_tuples += dir.nodes as f64;
        }
        (*stats).num_pages = idx.blocks();
        stats
    }
}

/// The address `flat`'s planner hook recognises an hnsw index by.
pub const COST_ESTIMATE: unsafe extern "C-unwind" fn(
    *mut pg_sys::PlannerInfo,
    *mut pg_sys::IndexPath,
    f64,
    *mut pg_sys::Cost,
    *mut pg_sys::Cost,
    *mut pg_sys::Selectivity,
    *mut f64,
    *mut f64,
) = cost_estimate;

/// The planner's cost: the pages and distances of one walk (`ef_search` candidates, each with
/// its neighbours), not the table. A path that does not order by distance is not one this
/// index offers.
// The signature is PostgreSQL's (amcostestimate_function).
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn cost_estimate(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    loop_count: f64,
    startup: *mut pg_sys::Cost,
    total: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    // SAFETY: PostgreSQL passes the path being costed and the outputs to fill.
    unsafe {
        let mut costs: pg_sys::GenericCosts = std::mem::zeroed();
        pg_sys::genericcostestimate(root, path, loop_count, &mut costs);
        let info = (*path).indexinfo;
        // A keyed index under a row-level security policy serves only a query that names one
        // key value (`start` refuses others): without a condition on the key column the path
        // is ranked last, so the query gets the plan it would get without the index.
        let keyless_under_policy = (*info).nkeycolumns == 2
            && !key_condition((*path).indexclauses)
            && crate::storage::flat::filtered_by_policy(root, (*(*info).rel).relid);
        if (*path).indexorderbys.is_null() || keyless_under_policy {
            *startup = 2.0 * pg_sys::disable_cost;
            *total = *startup;
        } else {
            let tuples = (*info).tuples.max(1.0);
            let ef = f64::from(ef_search_setting().unwrap_or(40) as u32);
            let visited = tuples.min(ef * 2.0 * 16.0 * 1.5);
            let fraction = visited / tuples;
            let cost = (*info).pages as f64 * fraction * pg_sys::random_page_cost
                + visited * pg_sys::cpu_operator_cost * 4.0;
            *startup = cost;
            *total = cost;
        }
        *selectivity = costs.indexSelectivity;
        *correlation = 0.0;
        *pages = costs.numIndexPages;
    }
}

/// Whether the path's index conditions include one on the key column (the first).
///
/// # Safety
/// `clauses` is a path's list of IndexClause nodes.
unsafe fn key_condition(clauses: *mut pg_sys::List) -> bool {
    if clauses.is_null() {
        return false;
    }
    // SAFETY: per the contract.
    unsafe {
        (0..usize::try_from((*clauses).length).unwrap_or(0)).any(|i| {
            let clause = (*(*clauses).elements.add(i))
                .ptr_value
                .cast::<pg_sys::IndexClause>();
            (*clause).indexcol == 0
        })
    }
}

/// `hnsw.ef_search`: read where it is set (a placeholder, or pgvector's own setting when
/// pgvector is loaded in the same backend: defining it here would clash with pgvector's).
fn ef_search_setting() -> Result<usize, String> {
    // SAFETY: reading a setting by name; missing_ok gives null for one never set.
    let raw = unsafe { pg_sys::GetConfigOption(c"hnsw.ef_search".as_ptr(), true, false) };
    if raw.is_null() {
        return Ok(40);
    }
    // SAFETY: a setting's value is a NUL-terminated string.
    let text = unsafe { std::ffi::CStr::from_ptr(raw) }
        .to_string_lossy()
        .into_owned();
    let value: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid value for hnsw.ef_search: \"{text}\""))?;
    graph::ef_search(value).map_err(|e| e.to_string())
}

/// One key's graph in a scan.
struct GraphScan {
    head: pg_sys::BlockNumber,
    entry: Option<Entry<ItemId>>,
    scan: graph::Scan<ItemId>,
    /// Its next node, once looked at, and whether it has none left.
    peeked: Option<Near<ItemId>>,
    done: bool,
}

/// A scan's state, attached to its memory context.
struct Scan {
    started: bool,
    graphs: Vec<GraphScan>,
    /// For a NULL query: every node of every graph, in no order.
    unordered: Vec<ItemId>,
    null_query: bool,
    params: Option<Params>,
    space: Space,
}

impl Scan {
    fn new() -> Scan {
        Scan {
            started: false,
            graphs: Vec::new(),
            unordered: Vec::new(),
            null_query: false,
            params: None,
            space: Space::new(Metric::L2),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn begin_scan(
    index: pg_sys::Relation,
    nkeys: std::ffi::c_int,
    norderbys: std::ffi::c_int,
) -> pg_sys::IndexScanDesc {
    // SAFETY: the standard set-up of an index scan; the state lives as long as the memory
    // context the executor runs the scan in.
    unsafe {
        let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
        let n = usize::try_from(norderbys).unwrap_or(0).max(1);
        (*scan).xs_orderbyvals = pg_sys::palloc0(n * std::mem::size_of::<pg_sys::Datum>()).cast();
        (*scan).xs_orderbynulls = pg_sys::palloc0(n * std::mem::size_of::<bool>()).cast();
        let state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(Scan::new());
        (*scan).opaque = state.cast();
        scan
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn rescan(
    scan: pg_sys::IndexScanDesc,
    keys: pg_sys::ScanKey,
    nkeys: std::ffi::c_int,
    orderbys: pg_sys::ScanKey,
    norderbys: std::ffi::c_int,
) {
    // SAFETY: `scan` was made by `begin_scan`; the key arrays hold as many keys as it has room.
    unsafe {
        if nkeys > 0 && !keys.is_null() {
            std::ptr::copy(keys, (*scan).keyData, usize::try_from(nkeys).unwrap_or(0));
        }
        if norderbys > 0 && !orderbys.is_null() {
            std::ptr::copy(
                orderbys,
                (*scan).orderByData,
                usize::try_from(norderbys).unwrap_or(0),
            );
        }
        *(*scan).opaque.cast::<Scan>() = Scan::new();
    }
}

/// Sets up the scan's graphs from its keys: the key's graph when the query names its key
/// value, every graph otherwise.
///
/// # Safety
/// `scan` is an hnsw scan after `rescan`.
unsafe fn start(scan: pg_sys::IndexScanDesc, state: &mut Scan) {
    // SAFETY: per the contract.
    unsafe {
        state.started = true;
        let index = (*scan).indexRelation;
        let idx = Index::new(index);
        let shape = shape(index);
        let meta = idx.meta();
        let params = params_from(&meta);
        state.params = Some(params);
        state.space = Space::new(metric_of(meta.strategy));
        if (*scan).numberOfOrderBys != 1 {
            unsupported("an hnsw index scan orders by one distance");
        }
        let order = &*(*scan).orderByData;
        if u32::from(order.sk_strategy) != meta.strategy {
            damaged("a scan by another distance than the index's");
        }
        // The key quals: `key = value` on the key column.
        let mut key: Option<[u8; 16]> = None;
        for i in 0..usize::try_from((*scan).numberOfKeys).unwrap_or(0) {
            let k = &*(*scan).keyData.add(i);
            if k.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
                return;
            }
            let Some(kind) = shape.key else {
                damaged("a key qual on an index without a key column");
            };
            let Some(value) = scan_key_bytes(kind, k.sk_argument, k.sk_subtype) else {
                // An integer no key of the column's type can equal.
                return;
            };
            if key.is_some_and(|other| other != value) {
                return;
            }
            key = Some(value);
        }
        if shape.key.is_some() && key.is_none() && under_policy((*(*scan).heapRelation).rd_id) {
            errors::raise(Error::new(
                Kind::Forbidden,
                "an hnsw index with a key column is scanned under a row-level security policy only for one key value: add `key_column = value` to the query",
            ));
        }
        let dirs = match (shape.key, key) {
            (Some(_), Some(k)) => idx.find(&k).into_iter().collect(),
            (None, _) => idx.find(&[0; 16]).into_iter().collect(),
            (Some(_), None) => idx.entries(),
        };
        let query = (order.sk_flags & pg_sys::SK_ISNULL as i32 == 0).then(|| {
            vector::VectorArg::from_datum(order.sk_argument, false)
                .expect("a non-null datum")
                .0
                .to_vec()
        });
        if let Some(q) = &query {
            if meta.dims != 0 && q.len() != meta.dims as usize {
                errors::raise(Error::new(
                    Kind::DataException,
                    format!("different vector dimensions {} and {}", meta.dims, q.len()),
                ));
            }
        }
        // A NULL query (or a zero one under cosine) has no distance to any row: every row, in
        // no order.
        let Some(query) = query.and_then(|q| state.space.prepare(&q)) else {
            state.null_query = true;
            for (_, dir) in dirs {
                state.unordered.extend(idx.nodes(dir.head).0);
            }
            state.unordered.reverse();
            return;
        };
        let ef = ef_search_setting().unwrap_or_else(|e| invalid(e));
        let exact_below = u64::try_from(gucs::HNSW_EXACT_BELOW.get()).unwrap_or(0);
        for (_, dir) in dirs {
            let scan = if dir.nodes < exact_below {
                graph::Scan::exact(&query)
            } else {
                graph::Scan::new(&query, ef)
            };
            state.graphs.push(GraphScan {
                head: dir.head,
                entry: dir.entry().map(|(id, level)| Entry { id, level }),
                scan,
                peeked: None,
                done: false,
            });
        }
    }
}

fn under_policy(relid: pg_sys::Oid) -> bool {
    // SAFETY: a plain call with a valid relation id (the scan's heap).
    let own = unsafe { pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true) };
    own == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
}

/// The scan's next node: the nearest of its graphs' next ones.
///
/// # Safety
/// `scan` is an hnsw scan after `start`.
unsafe fn next_node(scan: pg_sys::IndexScanDesc, state: &mut Scan) -> Option<Near<ItemId>> {
    // SAFETY: per the contract.
    let idx = unsafe { Index::new((*scan).indexRelation) };
    let params = state.params.expect("started");
    for g in &mut state.graphs {
        if g.peeked.is_none() && !g.done {
            let mut disk = Disk::reader(&idx, params, state.space, g.head);
            let Ok(next) = g.scan.next(&mut disk, g.entry);
            g.peeked = next;
            g.done = next.is_none();
        }
    }
    let best = state
        .graphs
        .iter_mut()
        .filter(|g| g.peeked.is_some())
        .min_by(|a, b| a.peeked.cmp(&b.peeked))?;
    best.peeked.take()
}

#[pg_guard]
unsafe extern "C-unwind" fn get_tuple(
    scan: pg_sys::IndexScanDesc,
    _direction: pg_sys::ScanDirection::Type,
) -> bool {
    // SAFETY: `scan` was made by `begin_scan` and reset by `rescan`; the executor allotted one
    // ORDER BY value and null flag.
    unsafe {
        let state = &mut *(*scan).opaque.cast::<Scan>();
        if !state.started {
            start(scan, state);
            crate::storage::pages::count(
                (*scan).indexRelation,
                crate::storage::pages::Count::IndexScan,
            );
        }
        let idx = Index::new((*scan).indexRelation);
        let params = state.params;
        loop {
            let (id, distance) = if state.null_query {
                match state.unordered.pop() {
                    Some(id) => (id, None),
                    None => return false,
                }
            } else {
                match next_node(scan, state) {
                    Some(n) => (n.id, Some(state.space.distance(n.distance))),
                    None => return false,
                }
            };
            let Some(params) = params else {
                return false;
            };
            let disk = Disk::reader(&idx, params, state.space, pg_sys::InvalidBlockNumber);
            let (heap, _, live) = disk.element(id);
            if !live {
                continue;
            }
            (*scan).xs_heaptid = crate::storage::heap::tid(heap.block, heap.offset);
            (*scan).xs_recheck = false;
            (*scan).xs_recheckorderby = false;
            *(*scan).xs_orderbyvals = pg_sys::Datum::from(distance.unwrap_or(0.0).to_bits());
            *(*scan).xs_orderbynulls = distance.is_none();
            return true;
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn end_scan(scan: pg_sys::IndexScanDesc) {
    // SAFETY: `scan` was made by `begin_scan`; its state is freed with its memory context.
    unsafe {
        *(*scan).opaque.cast::<Scan>() = Scan::new();
    }
}

pgrx::extension_sql_file!(
    "../../../../sql/hnsw.sql",
    name = "hnsw",
    requires = ["vector_ops"],
);

//! `hnsw`: the approximate index access method, with pgvector's DDL (`USING hnsw`, the
//! operator classes `vector_l2_ops`, `vector_ip_ops`, `vector_cosine_ops`, `vector_l1_ops`,
//! `WITH (m, ef_construction)`, `SET hnsw.ef_search`), and one graph per key value:
//! `USING hnsw (tenant_id, embedding vector_cosine_ops)` keeps a separate graph per tenant, and
//! a scan with `tenant_id = $1` (given by the query or by the tenant isolation policy) walks
//! that tenant's graph only.
//!
//! The graph algorithms are `sealstore_core::graph`; this module is the glue: the pages
//! (`pages.rs`), one key's graph as the algorithms see it (`disk.rs`), the build (`build.rs`),
//! scans (`scan.rs`), VACUUM (`vacuum.rs`), and below the handler, the options, the index's
//! shape and keys, inserts and the planner's cost. A build inserts every row into graphs in memory while they fit in
//! `maintenance_work_mem`, then writes them out page by page (and goes on inserting on disk,
//! with a NOTICE, if they stop fitting). A scan yields every node of its graph once, the
//! nearest first, then wider walks, then the rest by exact distance, so a query whose other
//! conditions reject rows is never short; a graph below `sealstore.hnsw_exact_below` nodes is
//! searched exactly from the start.
//!
//! NULL vectors, and zero vectors under the cosine distance (which has no value for them), are
//! not indexed, as in pgvector; nor are rows whose key is NULL.

mod build;
pub mod collections;
mod disk;
mod kept;
mod pages;
mod scan;
mod vacuum;

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::distance::Metric;
use sealstore_core::graph::memory::MemoryGraph;
use sealstore_core::graph::record::{Element, ItemId};
use sealstore_core::graph::{self, Entry, Params, Space};

use std::rc::Rc;

use self::disk::Disk;
use self::pages::{damaged, DirEntry, Index, Meta};
use crate::runtime::errors::{self, Error, Kind, OrRaise};
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
    crate::storage::index_am::distance_ordered(true, true, |am| {
        // INCLUDE columns: only documents_sealed_graph's (the tenant and document id its
        // embeddings are opened with); `shape` refuses any other.
        am.amcaninclude = true;
        am.ambuild = Some(build::build);
        am.ambuildempty = Some(build::build_empty);
        am.aminsert = Some(insert);
        am.ambulkdelete = Some(vacuum::bulk_delete);
        am.amvacuumcleanup = Some(vacuum::vacuum_cleanup);
        am.amcostestimate = Some(cost_estimate);
        am.amoptions = Some(options);
        am.amvalidate = Some(validate);
        am.ambeginscan = Some(scan::begin_scan);
        am.amrescan = Some(scan::rescan);
        am.amgettuple = Some(scan::get_tuple);
        am.amendscan = Some(scan::end_scan);
    })
}

/// The V1 calling convention record of `sealstore_hnsw_handler`.
#[no_mangle]
pub extern "C" fn pg_finfo_sealstore_hnsw_handler() -> &'static pg_sys::Pg_finfo_record {
    &crate::storage::index_am::FINFO_V1
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

/// What an index's graphs are over.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A vector column (an application's table), with the distance of its operator class.
    Column,
    /// `search()`'s graphs over `sealstore.documents` (sql/hnsw.sql), one per collection, each
    /// with its collection's distance and dimensions: over the `embedding` column, or (sealed)
    /// over `sealed_embedding`, opened with the tenant's key, the tenant and the document id
    /// being the index's two INCLUDE columns.
    Collections { sealed: bool },
}

/// What an index is: its key column (if any), its vector column, its form.
#[derive(Clone, Copy)]
struct Shape {
    key: Option<KeyType>,
    /// The vector column's position among the index's columns (0 or 1).
    vector_att: usize,
    form: Form,
}

/// # Safety
/// `index` is an open hnsw index.
unsafe fn shape(index: pg_sys::Relation) -> Shape {
    // SAFETY: per the contract.
    unsafe {
        let natts = (*(*index).rd_index).indnatts as usize;
        let nkeys = (*(*index).rd_index).indnkeyatts as usize;
        let desc = (*index).rd_att;
        let att_type = |i: usize| (*(*desc).attrs.as_ptr().add(i)).atttypid;
        if nkeys > 2 {
            unsupported("an hnsw index has a vector column and at most one key column before it");
        }
        let vector_att = nkeys - 1;
        let key = (nkeys == 2).then(|| match att_type(0) {
            pg_sys::UUIDOID => KeyType::Uuid,
            pg_sys::INT4OID => KeyType::Int4,
            pg_sys::INT8OID => KeyType::Int8,
            _ => unsupported("an hnsw index's key column must be uuid, integer or bigint"),
        });
        let included: Vec<pg_sys::Oid> = (nkeys..natts).map(att_type).collect();
        let form = if strategy_of(index, vector_att).is_some() {
            Form::Column
        } else {
            let sealed = att_type(vector_att) == pg_sys::BYTEAOID;
            let fits = key == Some(KeyType::Uuid)
                && if sealed {
                    included == [pg_sys::UUIDOID, pg_sys::UUIDOID]
                } else {
                    included.is_empty()
                };
            if !fits {
                unsupported(COLLECTIONS_ONLY);
            }
            Form::Collections { sealed }
        };
        if form == Form::Column && !included.is_empty() {
            unsupported("an hnsw index has no INCLUDE columns");
        }
        if form != (Form::Collections { sealed: true })
            && att_type(vector_att) != vector::type_oid()
        {
            unsupported("the last column of an hnsw index must be a vector");
        }
        Shape {
            key,
            vector_att,
            form,
        }
    }
}

const COLLECTIONS_ONLY: &str = "the collection operator classes are for sealstore.documents' graphs (sql/hnsw.sql): (collection_id, embedding) or (collection_id, sealed_embedding) INCLUDE (tenant_id, id)";

/// Refuses an index of collections on any table but `sealstore.documents`: it would open
/// envelopes it was handed (with any collection's tenant's key) outside every function's
/// checks. Checked when the index is built, the only way one comes to exist.
///
/// # Safety
/// `index` is an open hnsw index of `shape`.
unsafe fn check_table(index: pg_sys::Relation, shape: Shape) {
    if shape.form == Form::Column {
        return;
    }
    // SAFETY: per the contract; catalog lookups by name.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"sealstore".as_ptr(), true);
        let documents = pg_sys::get_relname_relid(c"documents".as_ptr(), nsp);
        if documents == pg_sys::InvalidOid || (*(*index).rd_index).indrelid != documents {
            unsupported(COLLECTIONS_ONLY);
        }
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

/// The strategy of the vector column's operator class (which distance it orders by); none for
/// the collection operator classes, whose graphs each have their collection's.
///
/// # Safety
/// `index` is an open hnsw index.
unsafe fn strategy_of(index: pg_sys::Relation, att: usize) -> Option<u32> {
    // SAFETY: per the contract.
    unsafe {
        let family = *(*index).rd_opfamily.add(att);
        let input = *(*index).rd_opcintype.add(att);
        (1..=4u16)
            .find(|&s| {
                pg_sys::get_opfamily_member(family, input, input, s as i16) != pg_sys::InvalidOid
            })
            .map(u32::from)
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

/// How one key's graph is kept: the index's options, the distance (the index's, or for an index
/// of collections the collection's), and for a sealed graph its tenant's keys.
#[derive(Clone)]
struct Graph {
    params: Params,
    space: Space,
    seal: Option<Rc<disk::Sealer>>,
}

/// The graph of the directory entry `dir`. A sealed graph's tenant must have its keys (42704
/// once shredded).
fn graph_of(index: &Index, meta: &Meta, dir: &DirEntry) -> Graph {
    let seal = (meta.per_collection != 0 && dir.sealed != 0).then(|| {
        let tenant = sealstore_core::crypto::TenantId::from_bytes(dir.tenant);
        let keys = crate::runtime::keycache::tenant_keys(&tenant).or_raise();
        Rc::new(disk::Sealer::new(tenant, keys, index.meta().index_id))
    });
    Graph {
        seal,
        ..graph_of_plain(meta, dir)
    }
}

/// The graph of `dir` without its keys.
fn graph_of_plain(meta: &Meta, dir: &DirEntry) -> Graph {
    let strategy = if meta.per_collection == 0 {
        meta.strategy
    } else {
        u32::from(dir.strategy)
    };
    Graph {
        params: params_from(meta),
        space: Space::new(metric_of(strategy)),
        seal: None,
    }
}

/// One row as its graph takes it: the key, the vector prepared for the graph's distance, and
/// for an index of collections the collection's description.
struct RowInput {
    key: [u8; 16],
    vector: Vec<f32>,
    collection: Option<collections::Described>,
}

/// The row's input, or none for a row that is not indexed (a NULL key or vector, or a zero
/// vector under cosine). `strategy` is a column index's distance.
///
/// # Safety
/// `values` and `isnull` cover the index's columns (INCLUDE columns too).
unsafe fn row_input(
    shape: Shape,
    strategy: u32,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
) -> Option<RowInput> {
    // SAFETY: per the contract.
    unsafe {
        let key = row_key(shape, values, isnull)?;
        let at = shape.vector_att;
        if *isnull.add(at) {
            return None;
        }
        match shape.form {
            Form::Column => {
                let value = vector::VectorArg::from_datum(*values.add(at), false)?;
                Some(RowInput {
                    key,
                    vector: Space::new(metric_of(strategy)).prepare(value.0)?,
                    collection: None,
                })
            }
            Form::Collections { sealed } => {
                let d = collections::describe(&key);
                let raw = if sealed {
                    if *isnull.add(at + 1) || *isnull.add(at + 2) {
                        damaged("a sealed embedding without its tenant or id");
                    }
                    let uuid = |i: usize| *(*values.add(i)).cast_mut_ptr::<[u8; 16]>();
                    let bytes = crate::storage::heap::varlena_bytes(*values.add(at));
                    collections::open_embedding(&d, &uuid(at + 1), &uuid(at + 2), bytes)?
                } else {
                    vector::VectorArg::from_datum(*values.add(at), false)?
                        .0
                        .to_vec()
                };
                collections::check_dims(&d, raw.len());
                Some(RowInput {
                    key,
                    vector: Space::new(d.metric).prepare(&raw)?,
                    collection: Some(d),
                })
            }
        }
    }
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

/// Checks a column's vector against the index's dimensions, setting them on the first one.
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

/// The directory entry of a row's key, added (described) if it is the key's first row.
fn entry_for(index: &Index, row: &RowInput) -> (ItemId, DirEntry) {
    index.find_or_add(&row.key, |e| {
        if let Some(d) = &row.collection {
            d.describe(e);
        }
    })
}

/// Inserts one row's node into its key's graph on disk.
fn insert_on_disk(index: &Index, meta: &Meta, row: &RowInput, heap: ItemId) {
    index.lock_key(&row.key, false);
    let (dir_at, dir) = entry_for(index, row);
    let g = graph_of(index, meta, &dir);
    let level = random_level(&g.params);
    let v = &row.vector;
    if v.len() > usize::from(u16::MAX) {
        invalid("vector too large for an hnsw index");
    }
    let element = Element {
        level: level as u8,
        heap,
        vector: v.to_vec(),
    };
    let empty = vec![Vec::new(); level + 1];
    let lengths = disk::node_lengths(g.seal.as_deref(), &g.params, v.len(), level);
    let id = index.append_node(dir_at, lengths, |node| {
        disk::node_records(g.seal.as_deref(), node, &g.params, &element, &empty)
    });
    let dir = index.entry_at(dir_at);
    match dir.entry() {
        // Unlinked until it has LINK_AT nodes (scanned exactly meanwhile).
        None if dir.nodes + 1 < graph::LINK_AT => {
            index.update_entry(dir_at, |e| e.nodes += 1);
        }
        None => {
            index.update_entry(dir_at, |e| e.nodes += 1);
            link_all(index, dir_at, &g);
        }
        Some((at, top)) => {
            let mut disk = Disk::writer(index, g.params, g.space, dir.head, g.seal.clone());
            let entry = Entry { id: at, level: top };
            let Ok(entry) = graph::insert(&mut disk, &g.params, Some(entry), id, v, level);
            index.update_entry(dir_at, |e| {
                e.nodes += 1;
                e.set_entry(Some((entry.id, entry.level)));
            });
        }
    }
    index.lock_key(&row.key, true);
}

/// Links every live node of an unlinked graph, built in memory as CREATE INDEX builds one
/// (each node keeps the level it was given), then written back list by list. The caller holds
/// the key's lock.
fn link_all(index: &Index, dir_at: ItemId, g: &Graph) {
    let dir = index.entry_at(dir_at);
    let (live, _) = index.nodes(dir.head);
    let mut disk = Disk::writer(index, g.params, g.space, dir.head, g.seal.clone());
    let mut memory: Option<MemoryGraph> = None;
    for &id in &live {
        let (heap, level, _) = disk.element(id);
        let v = disk.vector_of(id);
        memory
            .get_or_insert_with(|| MemoryGraph::new(g.space, v.len()))
            .add(&g.params, heap, &v, level);
        pgrx::check_for_interrupts!();
    }
    let Some(memory) = memory else {
        return;
    };
    for (i, &id) in live.iter().enumerate() {
        let lists: Vec<Vec<ItemId>> = memory
            .lists(i as u32)
            .iter()
            .map(|l| l.iter().map(|&n| live[n as usize]).collect())
            .collect();
        disk.write_lists(id, &lists);
    }
    let entry = memory.entry().map(|e| (live[e.id as usize], e.level));
    index.update_entry(dir_at, |e| e.set_entry(entry));
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
        let idx = Index::new(index);
        let mut meta = idx.meta();
        let Some(row) = row_input(shape, meta.strategy, values, isnull) else {
            return false;
        };
        if shape.form == Form::Column {
            check_dims(&idx, &mut meta, row.vector.len());
        }
        insert_on_disk(&idx, &meta, &row, heap_item(&*tid));
        false
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
pub(super) fn ef_search_setting() -> Result<usize, String> {
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

pgrx::extension_sql_file!(
    "../../../../sql/hnsw.sql",
    name = "hnsw",
    requires = ["vector_ops", "documents_schema"],
);

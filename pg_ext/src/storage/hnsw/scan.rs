//! Scanning an hnsw index: the graphs the scan's key names (or every one), each walked by
//! `sealstore_core::graph::Scan`, their nodes merged nearest first.

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::distance::Metric;
use sealstore_core::graph::record::ItemId;
use sealstore_core::graph::{self, Entry, Near, Params, Space};

use super::disk::Disk;
use super::kept;
use super::pages::{damaged, Index};
use super::*;
use crate::runtime::errors::{self, Error, Kind};
use crate::runtime::gucs;
use crate::storage::flat::under_policy;
use crate::storage::vector;

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

/// One key's graph in a scan.
struct GraphScan {
    head: pg_sys::BlockNumber,
    /// The graph in this backend's memory, when it is kept there.
    frozen: Option<kept::Shared>,
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
pub(super) unsafe extern "C-unwind" fn begin_scan(
    index: pg_sys::Relation,
    nkeys: std::ffi::c_int,
    norderbys: std::ffi::c_int,
) -> pg_sys::IndexScanDesc {
    // SAFETY: PostgreSQL calls this as the access method's ambeginscan.
    unsafe { crate::storage::index_am::begin_scan(index, nkeys, norderbys, Scan::new()) }
}

#[pg_guard]
pub(super) unsafe extern "C-unwind" fn rescan(
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
        if meta.per_collection != 0 {
            unsupported("the graphs of sealstore.documents are read by search(), not by queries");
        }
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
        // The planner keeps such scans away (a shared graph is hidden, a keyed index without a
        // key condition ranked last); a scan that starts anyway would walk other tenants' rows.
        if key.is_none() && under_policy((*(*scan).heapRelation).rd_id) {
            errors::raise(Error::new(
                Kind::Forbidden,
                "an hnsw index is scanned under a row-level security policy only for one key value: index the tenant column first and name its value (or let the policy name it)",
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
            let scan = if dir.nodes < exact_below || dir.entry().is_none() {
                graph::Scan::exact(&query)
            } else {
                graph::Scan::new(&query, ef)
            };
            let frozen = kept::graph(
                &idx,
                &meta,
                &dir,
                &graph_of(&idx, &meta, &dir),
                meta.dims as usize,
            );
            state.graphs.push(GraphScan {
                head: dir.head,
                frozen,
                entry: dir.entry().map(|(id, level)| Entry { id, level }),
                scan,
                peeked: None,
                done: false,
            });
        }
    }
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
            let next = match &g.frozen {
                Some(f) => g
                    .scan
                    .next(&mut *f.borrow_mut(), g.entry)
                    .unwrap_or_else(|_| damaged("a scan wrote to a graph")),
                None => {
                    let mut disk = Disk::reader(&idx, params, state.space, g.head, None);
                    let Ok(next) = g.scan.next(&mut disk, g.entry);
                    next
                }
            };
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
pub(super) unsafe extern "C-unwind" fn get_tuple(
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
            let disk = Disk::reader(&idx, params, state.space, pg_sys::InvalidBlockNumber, None);
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
pub(super) unsafe extern "C-unwind" fn end_scan(scan: pg_sys::IndexScanDesc) {
    // SAFETY: `scan` was made by `begin_scan`; its state is freed with its memory context.
    unsafe {
        *(*scan).opaque.cast::<Scan>() = Scan::new();
    }
}

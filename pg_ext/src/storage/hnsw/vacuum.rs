//! VACUUM of an hnsw index: the nodes of removed rows marked dead, their neighbours relinked,
//! the entry point moved off a dead node.

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::graph;
use sealstore_core::graph::record::ItemId;

use super::disk::Disk;
use super::pages::Index;
use super::*;

/// VACUUM: marks the nodes of removed rows deleted, relinks their neighbours, and moves the
/// entry point off a deleted node.
#[pg_guard]
pub(super) unsafe extern "C-unwind" fn bulk_delete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: VACUUM passes the open index and the callback that says which TIDs are gone.
    unsafe {
        let stats = crate::storage::index_am::stats_or_new(stats);
        let idx = Index::new((*info).index);
        let meta = idx.meta();
        let Some(callback) = callback else {
            return stats;
        };
        for (dir_at, dir) in idx.entries() {
            idx.lock_key(&dir.key, false);
            let dir = idx.entry_at(dir_at);
            // A sealed graph of a shredded tenant cannot be read, so it is not relinked: its
            // removed rows' nodes are only marked.
            let (graph, readable) = if meta.per_collection != 0 && dir.sealed != 0 {
                match collections::sealer_if_usable(&dir.tenant, meta.index_id) {
                    Some(seal) => (
                        Graph {
                            seal: Some(seal),
                            ..graph_of_plain(&meta, &dir)
                        },
                        true,
                    ),
                    None => (graph_of_plain(&meta, &dir), false),
                }
            } else {
                (graph_of(&idx, &meta, &dir), true)
            };
            let params = graph.params;
            let mut disk = Disk::writer(&idx, params, graph.space, dir.head, graph.seal.clone());
            let (live, _) = idx.nodes(dir.head);
            let mut gone = std::collections::HashSet::new();
            for &id in &live {
                let (heap, _, _) = disk.element(id);
                let mut tid = crate::storage::heap::tid(heap.block, heap.offset);
                if callback(&mut tid, callback_state) {
                    gone.insert(id);
                }
            }
            if !gone.is_empty() && !readable {
                for id in &gone {
                    idx.mark_dead(id.block, &[id.offset]);
                }
                idx.update_entry(dir_at, |e| e.nodes = (live.len() - gone.len()) as u64);
                (*stats).tuples_removed += gone.len() as f64;
            } else if !gone.is_empty() {
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
pub(super) unsafe extern "C-unwind" fn vacuum_cleanup(
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
        let stats = crate::storage::index_am::stats_or_new(std::ptr::null_mut());
        let idx = Index::new((*info).index);
        for (_, dir) in idx.entries() {
            (*stats).num_index_tuples += dir.nodes as f64;
        }
        (*stats).num_pages = idx.blocks();
        stats
    }
}

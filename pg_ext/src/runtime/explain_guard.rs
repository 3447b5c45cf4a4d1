//! EXPLAIN is refused for a statement that reads a table under row-level security for the
//! current user.
//!
//! A plan describes all of a table's rows, not the ones a policy lets the caller see: EXPLAIN
//! ANALYZE's "Rows Removed by Filter" counts other tenants' rows, an index condition confirms
//! whether another tenant holds a value, and plain EXPLAIN's row estimates come from column
//! statistics over every tenant. A role that bypasses the policies (the table's owner without
//! FORCE, a superuser) may still EXPLAIN: it sees those rows anyway.
//!
//! Every EXPLAIN (also EXPLAIN EXECUTE, and EXPLAIN run by a function) is a utility statement
//! that starts its plan with the executor, with `EXEC_FLAG_EXPLAIN_ONLY` or, for ANALYZE, with
//! instrumentation: the utility hook marks the span of an EXPLAIN, and the executor hook
//! checks each plan started with those marks inside it. Queries that functions run while an
//! EXPLAIN ANALYZE executes have neither mark and are not EXPLAINed.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::runtime::errors::{self, Error, Kind};

static mut NEXT_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;
static mut NEXT_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

thread_local! {
    /// How many EXPLAIN statements are executing in this backend (nested through functions).
    static EXPLAINING: Cell<u32> = const { Cell::new(0) };
}

/// Installs both hooks (from `_PG_init`), keeping and calling the ones before them.
pub fn init() {
    // SAFETY: library load runs single-threaded.
    unsafe {
        NEXT_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        NEXT_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
    }
}

/// Leaves the EXPLAIN span when dropped, also when an ERROR unwinds through the hook.
struct Span;

impl Drop for Span {
    fn drop(&mut self) {
        EXPLAINING.set(EXPLAINING.get().saturating_sub(1));
    }
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: the arguments are passed on as received; the statement's node is only read.
    unsafe {
        let utility = (*pstmt).utilityStmt;
        let _span = (!utility.is_null() && (*utility).type_ == pg_sys::NodeTag::T_ExplainStmt)
            .then(|| {
                EXPLAINING.set(EXPLAINING.get() + 1);
                Span
            });
        match NEXT_PROCESS_UTILITY {
            Some(next) => next(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: the executor passes a query descriptor with its planned statement.
    unsafe {
        let explained = eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0
            || (*query_desc).instrument_options != 0;
        if explained && EXPLAINING.get() > 0 {
            refuse_if_filtered((*query_desc).plannedstmt);
        }
        match NEXT_EXECUTOR_START {
            Some(next) => next(query_desc, eflags),
            None => pg_sys::standard_ExecutorStart(query_desc, eflags),
        }
    }
}

/// Raises 42501 if the plan reads a table that row-level security filters for this user.
///
/// # Safety
/// `stmt` is a planned statement about to be executed.
unsafe fn refuse_if_filtered(stmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: the range table is a list of RangeTblEntry nodes.
    unsafe {
        let rtable = (*stmt).rtable;
        if rtable.is_null() {
            return;
        }
        for i in 0..usize::try_from((*rtable).length).unwrap_or(0) {
            let rte = (*(*rtable).elements.add(i))
                .ptr_value
                .cast::<pg_sys::RangeTblEntry>();
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && pg_sys::check_enable_rls((*rte).relid, pg_sys::InvalidOid, true)
                    == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
            {
                errors::raise(
                    Error::new(Kind::Forbidden,
                        "EXPLAIN is not allowed for a statement that reads a table under row-level security",
                    )
                    .with_code("explain_refused")
                    .with_detail(
                        "A plan describes every tenant's rows (row counts, estimates, index conditions), not only the visible ones.",
                    ),
                );
            }
        }
    }
}

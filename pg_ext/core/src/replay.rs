//! Key changes that a hot standby has replayed but whose transactions it has not yet seen end.
//!
//! On a primary, a transaction that changes keys (a shred, a rotation, a revocation, a
//! retirement) bumps the shared key epoch when it commits, and every backend drops its caches.
//! A standby runs no such transaction: it replays the primary's WAL. So the extension writes a
//! WAL record of its own before such a transaction commits, naming the transaction; replaying
//! it, the standby bumps its epoch and notes the transaction here. Until the transaction's end
//! has been replayed too, a standby backend would load the old rows and cache them under the new
//! epoch, so while any noted transaction may still be running, backends do not cache; a backend
//! that sees one has ended bumps the epoch once more before it clears the entry, dropping
//! whatever was loaded in between. (Cleared first, another backend could find nothing pending,
//! read the epoch before the bump and keep what it loaded before the end.)
//!
//! Replay that starts after a record (from a base backup's or a restart's checkpoint, while the
//! transaction was still running) never sees it, so at the start of replay every transaction
//! that may be running is treated as noted ([`Pending::note_all_through`]).
//!
//! The state lives in shared memory, written by the startup process (one writer of new entries)
//! and cleared by any backend. Transaction ids are PostgreSQL's 32-bit ones, compared modulo
//! 2^32 as PostgreSQL does; 0 (InvalidTransactionId) marks an empty slot.

use std::sync::atomic::{AtomicU32, Ordering};

/// Transactions tracked one by one; more at once (64 concurrent key-changing transactions on the
/// primary) fall back to [`Pending::overflow`].
pub const SLOTS: usize = 64;

const EMPTY: u32 = 0;

/// Noted transactions. All zero is the empty state, so zeroed shared memory is a valid value.
#[repr(C)]
pub struct Pending {
    /// How many slots are taken, read first so that the common case (none) costs one load.
    taken: AtomicU32,
    slots: [AtomicU32; SLOTS],
    /// The newest transaction that found no free slot (0: none). It and every older transaction
    /// that overflowed are over once every transaction up to it has ended.
    overflow: AtomicU32,
}

/// What a backend should do with its caches, from [`Pending::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Nothing is pending: cache as usual.
    Quiet,
    /// Noted transactions have ended since the last look, and the epoch was bumped before
    /// they were cleared: cache as usual.
    Ended,
    /// A noted transaction may still be running: load, but do not cache.
    Running,
}

/// `a` is newer than `b`, modulo 2^32 (PostgreSQL's TransactionIdFollows for normal ids).
fn follows(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Pending {
    pub const fn new() -> Self {
        Pending {
            taken: AtomicU32::new(0),
            slots: [const { AtomicU32::new(EMPTY) }; SLOTS],
            overflow: AtomicU32::new(EMPTY),
        }
    }

    /// Notes transaction `xid` (not 0), from the replay of its record.
    pub fn note(&self, xid: u32) {
        debug_assert_ne!(xid, EMPTY);
        for slot in &self.slots {
            if slot.load(Ordering::Relaxed) == xid {
                return;
            }
        }
        // Taken before the slot is filled, so a reader that finds the count zero has not missed
        // a filled slot.
        self.taken.fetch_add(1, Ordering::AcqRel);
        for slot in &self.slots {
            if slot
                .compare_exchange(EMPTY, xid, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        self.taken.fetch_sub(1, Ordering::AcqRel);
        // No slot free: it waits with every transaction up to it.
        self.note_all_through(xid);
    }

    /// Notes every transaction up to `xid`: their records may lie before the point where replay
    /// starts (or found no slot), so caching waits until all of them have ended.
    pub fn note_all_through(&self, xid: u32) {
        let mut current = self.overflow.load(Ordering::Acquire);
        while current == EMPTY || follows(xid, current) {
            match self
                .overflow
                .compare_exchange(current, xid, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Looks at what is noted: `ended(xid)` says whether a transaction's end has been replayed,
    /// `all_ended_through(xid)` whether every transaction up to `xid` has ended. Before it
    /// clears what has ended it calls `bump` (once), so that whoever finds an entry gone also
    /// finds the epoch moved.
    pub fn settle(
        &self,
        ended: impl Fn(u32) -> bool,
        all_ended_through: impl Fn(u32) -> bool,
        bump: impl Fn(),
    ) -> Settled {
        let overflow = self.overflow.load(Ordering::Acquire);
        if self.taken.load(Ordering::Acquire) == 0 && overflow == EMPTY {
            return Settled::Quiet;
        }
        let mut cleared = false;
        let mut running = false;
        let mut bumped = false;
        let mut bump_once = || {
            if !bumped {
                bump();
                bumped = true;
            }
        };
        for slot in &self.slots {
            let xid = slot.load(Ordering::Acquire);
            if xid == EMPTY {
                continue;
            }
            if !ended(xid) {
                running = true;
                continue;
            }
            bump_once();
            if slot
                .compare_exchange(xid, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.taken.fetch_sub(1, Ordering::AcqRel);
                cleared = true;
            }
        }
        if overflow != EMPTY {
            if !all_ended_through(overflow) {
                running = true;
            } else {
                bump_once();
                if self
                    .overflow
                    .compare_exchange(overflow, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    cleared = true;
                }
            }
        }
        match (running, cleared) {
            (true, _) => Settled::Running,
            (false, true) => Settled::Ended,
            // Another backend cleared them between our loads, after bumping the epoch.
            (false, false) => Settled::Quiet,
        }
    }
}

impl Default for Pending {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn nothing_noted_is_quiet() {
        let p = Pending::new();
        assert_eq!(
            p.settle(|_| panic!(), |_| panic!(), || panic!()),
            Settled::Quiet
        );
    }

    #[test]
    fn a_noted_transaction_blocks_caching_until_it_ends_then_ends_once() {
        let p = Pending::new();
        p.note(100);
        p.note(100);
        let bumps = std::cell::Cell::new(0);
        let bump = || bumps.set(bumps.get() + 1);
        assert_eq!(p.settle(|_| false, |_| false, bump), Settled::Running);
        assert_eq!(bumps.get(), 0);
        // The epoch moves before the entry goes: a bump is seen by the time it is gone.
        let ended = p.settle(
            |x| x == 100,
            |_| false,
            || {
                assert_eq!(
                    p.taken.load(Ordering::Relaxed),
                    1,
                    "cleared before the bump"
                );
                bump();
            },
        );
        assert_eq!((ended, bumps.get()), (Settled::Ended, 1));
        assert_eq!(p.settle(|_| true, |_| true, bump), Settled::Quiet);
        assert_eq!(bumps.get(), 1);
    }

    #[test]
    fn replay_that_starts_late_waits_for_every_running_transaction() {
        let p = Pending::new();
        p.note_all_through(500);
        p.note_all_through(400);
        assert_eq!(p.overflow.load(Ordering::Relaxed), 500);
        assert_eq!(p.settle(|_| true, |x| x != 500, || ()), Settled::Running);
        assert_eq!(p.settle(|_| true, |_| true, || ()), Settled::Ended);
        assert_eq!(p.settle(|_| true, |_| true, || ()), Settled::Quiet);
    }

    #[test]
    fn one_running_transaction_keeps_the_others_from_settling_the_state() {
        let p = Pending::new();
        p.note(7);
        p.note(9);
        assert_eq!(p.settle(|x| x == 7, |_| false, || ()), Settled::Running);
        assert_eq!(p.settle(|x| x == 9, |_| false, || ()), Settled::Ended);
        assert_eq!(p.settle(|_| true, |_| true, || ()), Settled::Quiet);
    }

    #[test]
    fn overflow_waits_for_every_transaction_up_to_the_newest() {
        let p = Pending::new();
        let xids: Vec<u32> = (1..=SLOTS as u32 + 3).collect();
        for &x in &xids {
            p.note(x);
        }
        let newest = *xids.last().unwrap();
        assert_eq!(p.overflow.load(Ordering::Relaxed), newest);
        // Every slotted one ended, but not all up to the overflowed newest.
        assert_eq!(p.settle(|_| true, |x| x != newest, || ()), Settled::Running);
        assert_eq!(p.settle(|_| true, |_| true, || ()), Settled::Ended);
        assert_eq!(p.settle(|_| true, |_| true, || ()), Settled::Quiet);
        // An older overflowing id does not replace a newer one, across wraparound too.
        let p = Pending::new();
        for x in 1..=SLOTS as u32 {
            p.note(x);
        }
        p.note(u32::MAX - 1);
        p.note(5000);
        p.note(4000);
        assert_eq!(p.overflow.load(Ordering::Relaxed), 5000);
    }

    #[test]
    fn slots_are_reused_and_counted_under_concurrent_settling() {
        let p = std::sync::Arc::new(Pending::new());
        for round in 0..50u32 {
            let base = round * 10 + 1;
            for x in base..base + 10 {
                p.note(x);
            }
            let ended: HashSet<u32> = (base..base + 10).collect();
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let p = p.clone();
                    let ended = ended.clone();
                    std::thread::spawn(move || p.settle(|x| ended.contains(&x), |_| true, || ()))
                })
                .collect();
            let results: Vec<Settled> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert!(results.iter().all(|r| *r != Settled::Running));
            assert_eq!(p.taken.load(Ordering::Relaxed), 0);
            assert_eq!(p.settle(|_| true, |_| true, || ()), Settled::Quiet);
        }
    }
}

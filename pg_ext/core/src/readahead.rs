//! The schedule by which the extension's heap scans (search's collection scan and the `flat`
//! index's pass, `pg_ext/src/storage/heap.rs`) read ahead of the row they score.
//!
//! What limits such a scan is waiting for memory: a page's buffer descriptor, its header and
//! line pointers, and each 3 KB row are cache misses that nothing else overlaps. The scan
//! therefore asks for them ahead of their turn, at distances chosen so that each arrives just
//! in time without the requests queueing behind one another (why these distances, and what
//! did worse: docs/performance.md). The schedule is pure arithmetic over page and line
//! numbers, so it is tested here; the extension only turns it into prefetches and pins.

use std::ops::Range;

/// How many pages ahead of the one being scored the scan asks for a hinted buffer's
/// descriptor, and for its page's header with the line pointers.
pub const DESCRIPTOR_AHEAD: usize = 16;
pub const HEADER_AHEAD: usize = 8;
// The descriptor is needed before the page it describes, so it is asked for further ahead.
const _: () = assert!(HEADER_AHEAD < DESCRIPTOR_AHEAD);

/// The cache lines of each row asked for when its page is pinned (one page ahead).
pub const ROW_LINES: usize = 8;

/// The rest of a row's lines are asked for one row ahead, in two halves split at this line:
/// the first half before the row ahead of it is scored, the second after. Asked for all at
/// once (40 lines of a 3 KB row), many did not arrive in time: a core has room for fewer
/// outstanding misses than that.
pub const SPLIT_LINE: usize = 28;

/// The cache line size the schedule counts in.
pub const LINE: usize = 64;

/// How many TIDs a collection scan takes from the index at a time (6 bytes each): a batch
/// bounds the scan's memory whatever the collection's size.
pub const TID_BATCH: usize = 1 << 16;

/// What to ask for while page `i` of `n` (in scan order) is worked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The page to pin now, so its first lines arrive while this one is scored.
    pub pin: Option<usize>,
    /// The page whose buffer descriptor to ask for.
    pub descriptor: Option<usize>,
    /// The page whose header and line pointers to ask for.
    pub header: Option<usize>,
}

/// The page to pin before the first one is worked on.
pub fn first_pin(n: usize) -> Option<usize> {
    (n > 0).then_some(0)
}

/// The step for page `i` of `n`: every page is pinned exactly once, the turn before its own,
/// and nothing is asked for past the last page.
pub fn step(i: usize, n: usize) -> Step {
    let ahead = |d: usize| i.checked_add(d).filter(|&p| p < n);
    Step {
        pin: ahead(1),
        descriptor: ahead(DESCRIPTOR_AHEAD),
        header: ahead(HEADER_AHEAD),
    }
}

/// Which of a row's cache lines are asked for when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// With its page's pin, a page ahead.
    Start,
    /// One row ahead, before the row before it is scored.
    First,
    /// One row ahead, after the row before it is scored.
    Second,
}

/// The cache lines (by index from the row's start) of a `len`-byte row to ask for as `part`.
/// The three parts together are every line of the row, each once.
pub fn lines(len: usize, part: Part) -> Range<usize> {
    let all = len.div_ceil(LINE);
    let start = ROW_LINES.min(all);
    let split = SPLIT_LINE.max(ROW_LINES).min(all);
    match part {
        Part::Start => 0..start,
        Part::First => start..split,
        Part::Second => split..all,
    }
}

/// Splits `items`, in page order, into runs on the same page: the ranges of `items` that the
/// scan visits as one page each.
pub fn runs<T>(items: &[T], page: impl Fn(&T) -> u32) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || page(&items[i]) != page(&items[start]) {
            out.push(start..i);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_is_pinned_once_the_turn_before_its_own() {
        for n in [0, 1, 2, 7, 8, 9, 16, 17, 100] {
            let mut pinned = Vec::new();
            pinned.extend(first_pin(n));
            for i in 0..n {
                // Page i was pinned before its turn.
                assert_eq!(pinned.last(), Some(&i), "n={n} i={i}");
                let s = step(i, n);
                pinned.extend(s.pin);
                for p in [s.descriptor, s.header].into_iter().flatten() {
                    assert!(p > i && p < n, "n={n} i={i} {s:?}");
                }
            }
            assert_eq!(pinned, (0..n).collect::<Vec<_>>(), "n={n}");
        }
    }

    #[test]
    fn descriptors_and_headers_are_asked_for_at_their_distances() {
        assert_eq!(
            step(0, 100),
            Step {
                pin: Some(1),
                descriptor: Some(DESCRIPTOR_AHEAD),
                header: Some(HEADER_AHEAD)
            }
        );
        // Every page but the first few is asked for, each once.
        let n = 50;
        let asked: Vec<usize> = (0..n).filter_map(|i| step(i, n).header).collect();
        assert_eq!(asked, (HEADER_AHEAD..n).collect::<Vec<_>>());
    }

    #[test]
    fn the_three_parts_cover_a_row_once() {
        for len in [0, 1, 64, 65, 500, 512, 1800, 3072, 3100, 8000] {
            let parts = [Part::Start, Part::First, Part::Second].map(|p| lines(len, p));
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts[0].end, parts[1].start, "len={len}");
            assert_eq!(parts[1].end, parts[2].start, "len={len}");
            assert_eq!(parts[2].end, len.div_ceil(LINE), "len={len}");
        }
        // A 3 KB row (a 768-dimension embedding): 8 lines with the pin, then 20 and 20.
        assert_eq!(lines(3100, Part::First), 8..28);
        assert_eq!(lines(3100, Part::Second), 28..49);
    }

    #[test]
    fn runs_group_items_by_page() {
        let tids = [(1u32, 1), (1, 2), (3, 1), (4, 7), (4, 8), (4, 9)];
        assert_eq!(runs(&tids, |t| t.0), vec![0..2, 2..3, 3..6]);
        assert!(runs(&[] as &[(u32, u16)], |t| t.0).is_empty());
    }
}

//! The bounded top-k of a search: the `k` nearest rows seen so far, in the order of SQL's
//! `ORDER BY distance, id`.
//!
//! The order is PostgreSQL's: float8 comparison (every NaN equal to every other and above all
//! numbers, −0 equal to +0), then the id's 16 bytes (uuid order is byte order). Each row costs
//! one comparison against the current worst unless it enters; a row's payload (its metadata)
//! is built only when it enters, and the one it pushes out is handed back to be freed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A row's rank key: its distance and its id.
#[derive(Debug, Clone, Copy)]
pub struct Rank {
    pub distance: f64,
    pub id: [u8; 16],
}

impl Rank {
    /// SQL's `ORDER BY distance, id` for float8 distances and uuid ids.
    pub fn cmp_sql(&self, other: &Self) -> Ordering {
        let by_distance = match (self.distance.is_nan(), other.distance.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            // Neither is NaN, so partial_cmp answers (and says −0 == +0, as float8 does).
            (false, false) => self
                .distance
                .partial_cmp(&other.distance)
                .unwrap_or(Ordering::Equal),
        };
        by_distance.then_with(|| self.id.cmp(&other.id))
    }
}

struct Entry<T> {
    rank: Rank,
    payload: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.rank.cmp_sql(&other.rank) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank.cmp_sql(&other.rank)
    }
}

/// The `k` smallest ranks pushed so far, each with its payload.
pub struct TopK<T> {
    k: usize,
    /// A max-heap: its top is the worst row kept, the one the next better row replaces.
    heap: BinaryHeap<Entry<T>>,
}

/// What [`TopK::offer`] did with a row.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered<T> {
    /// Not among the k nearest: nothing was built.
    Rejected,
    /// Kept; nothing was pushed out.
    Kept,
    /// Kept, pushing out this payload.
    Replaced(T),
}

impl<T> TopK<T> {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    /// Whether a row of this rank would be kept now.
    pub fn admits(&self, rank: &Rank) -> bool {
        if self.heap.len() < self.k {
            return true;
        }
        match self.heap.peek() {
            Some(worst) => rank.cmp_sql(&worst.rank) == Ordering::Less,
            None => false,
        }
    }

    /// Keeps the row if it is among the k nearest so far; `payload` runs only then.
    pub fn offer(&mut self, rank: Rank, payload: impl FnOnce() -> T) -> Offered<T> {
        if !self.admits(&rank) {
            return Offered::Rejected;
        }
        self.heap.push(Entry {
            rank,
            payload: payload(),
        });
        if self.heap.len() > self.k {
            let out = self.heap.pop().expect("the heap holds k + 1 rows");
            Offered::Replaced(out.payload)
        } else {
            Offered::Kept
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The rows kept, nearest first.
    pub fn into_sorted(self) -> Vec<(Rank, T)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| (e.rank, e.payload))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so a failure names its seed.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    fn rows(seed: u64, n: usize) -> Vec<Rank> {
        let mut g = Lcg(seed);
        (0..n)
            .map(|_| {
                // Few distinct distances, so ties are common; NaN, −0 and +0 among them.
                let distance = match g.next() % 12 {
                    0 => f64::NAN,
                    1 => -0.0,
                    2 => 0.0,
                    3 => -f64::NAN,
                    4 => f64::INFINITY,
                    v => (v as f64) * 0.25 - 1.0,
                };
                let mut id = [0u8; 16];
                // Ids from a small space too, so the tie-break on id is exercised.
                id[0] = (g.next() % 4) as u8;
                id[15] = (g.next() % 256) as u8;
                Rank { distance, id }
            })
            .collect()
    }

    /// The order SQL gives, written independently: NaNs mapped above +inf, −0 folded into +0.
    fn sql_key(r: &Rank) -> (u8, i64, [u8; 16]) {
        if r.distance.is_nan() {
            (1, 0, r.id)
        } else {
            // Distances here are multiples of 0.25 or infinite: an exact integer key.
            let d = if r.distance.is_infinite() {
                i64::MAX
            } else {
                (r.distance * 4.0) as i64
            };
            (0, d, r.id)
        }
    }

    #[test]
    fn keeps_exactly_what_a_full_sort_and_limit_keeps() {
        for seed in 0..300u64 {
            let all = rows(seed, 1 + (seed as usize * 7) % 400);
            for k in [1, 2, 3, 10, 57, 1000] {
                let mut top = TopK::new(k);
                let mut evicted = 0;
                for (i, r) in all.iter().enumerate() {
                    match top.offer(*r, || i) {
                        Offered::Replaced(_) => evicted += 1,
                        Offered::Kept | Offered::Rejected => {}
                    }
                }
                let mut want: Vec<(Rank, usize)> = all.iter().copied().zip(0..).collect();
                want.sort_by_key(|(r, _)| sql_key(r));
                want.truncate(k);
                let got = top.into_sorted();
                assert_eq!(got.len(), want.len(), "seed {seed} k {k}");
                for ((g, _), (w, _)) in got.iter().zip(&want) {
                    assert_eq!(sql_key(g), sql_key(w), "seed {seed} k {k}");
                }
                assert!(evicted <= all.len().saturating_sub(k.min(all.len())));
            }
        }
    }

    #[test]
    fn payloads_are_built_only_for_rows_that_enter_and_handed_back_when_pushed_out() {
        let mut top = TopK::new(2);
        let r = |d: f64, b: u8| Rank {
            distance: d,
            id: [b; 16],
        };
        assert_eq!(top.offer(r(3.0, 1), || "a"), Offered::Kept);
        assert_eq!(top.offer(r(2.0, 1), || "b"), Offered::Kept);
        assert_eq!(
            top.offer(r(5.0, 1), || panic!("not built")),
            Offered::Rejected
        );
        // Equal distance and equal id: not better than the worst, so not kept.
        assert_eq!(
            top.offer(r(3.0, 1), || panic!("not built")),
            Offered::Rejected
        );
        // Equal distance, smaller id: better.
        assert_eq!(top.offer(r(3.0, 0), || "c"), Offered::Replaced("a"));
        assert_eq!(top.offer(r(f64::NAN, 0), || "x"), Offered::Rejected);
        let got: Vec<_> = top.into_sorted().into_iter().map(|(_, p)| p).collect();
        assert_eq!(got, ["b", "c"]);
    }

    #[test]
    fn nan_ranks_last_and_negative_zero_equals_zero() {
        let nan = Rank {
            distance: f64::NAN,
            id: [0; 16],
        };
        let inf = Rank {
            distance: f64::INFINITY,
            id: [9; 16],
        };
        assert_eq!(nan.cmp_sql(&inf), Ordering::Greater);
        let neg = Rank {
            distance: -0.0,
            id: [2; 16],
        };
        let pos = Rank {
            distance: 0.0,
            id: [1; 16],
        };
        // −0 and +0 tie, so the id decides.
        assert_eq!(neg.cmp_sql(&pos), Ordering::Greater);
    }
}

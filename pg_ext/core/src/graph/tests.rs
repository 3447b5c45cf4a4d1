use std::collections::HashSet;
use std::convert::Infallible;

use super::memory;
use super::record::ItemId;
use super::*;
use crate::distance::Metric;
use crate::test_rng::Rng;

/// Points around `clusters` centres spread over a cube, each point near its centre.
fn clustered(rng: &mut Rng, n: usize, dims: usize, clusters: usize, spread: f32) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| {
            (0..dims)
                .map(|_| (rng.unit() as f32 - 0.5) * 20.0)
                .collect()
        })
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % clusters];
            c.iter().map(|x| x + rng.gauss() * spread).collect()
        })
        .collect()
}

/// `n` points to index and `queries` more from the same clusters.
fn data_and_queries(
    seed: u64,
    n: usize,
    queries: usize,
    dims: usize,
    clusters: usize,
    spread: f32,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut all = clustered(&mut Rng(seed), n + queries, dims, clusters, spread);
    let q = all.split_off(n);
    (all, q)
}

/// A graph in memory; ids index `vectors`.
struct Mem {
    metric: Metric,
    vectors: Vec<Vec<f32>>,
    lists: Vec<Vec<Vec<u32>>>,
}

impl Store for Mem {
    type Id = u32;
    type Error = Infallible;

    fn distance(&mut self, query: &[f32], id: u32) -> Result<f64, Infallible> {
        Ok(self.metric.distance(query, &self.vectors[id as usize]))
    }
    fn distance_between(&mut self, a: u32, b: u32) -> Result<f64, Infallible> {
        Ok(self
            .metric
            .distance(&self.vectors[a as usize], &self.vectors[b as usize]))
    }
    fn neighbours(&mut self, id: u32, level: usize) -> Result<Vec<u32>, Infallible> {
        Ok(self.lists[id as usize]
            .get(level)
            .cloned()
            .unwrap_or_default())
    }
    fn set_neighbours(&mut self, id: u32, level: usize, n: &[u32]) -> Result<(), Infallible> {
        self.lists[id as usize][level] = n.to_vec();
        Ok(())
    }
    fn all(&mut self) -> Result<Vec<u32>, Infallible> {
        Ok((0..self.vectors.len() as u32).collect())
    }
}

fn build(
    metric: Metric,
    vectors: Vec<Vec<f32>>,
    params: &Params,
    seed: u64,
) -> (Mem, Option<Entry<u32>>) {
    let mut rng = Rng(seed);
    let mut mem = Mem {
        metric,
        vectors: Vec::new(),
        lists: Vec::new(),
    };
    let mut entry = None;
    for v in vectors {
        let level = params.level_for(rng.unit());
        let id = mem.vectors.len() as u32;
        mem.vectors.push(v.clone());
        mem.lists.push(vec![Vec::new(); level + 1]);
        entry = Some(insert(&mut mem, params, entry, id, &v, level).unwrap());
    }
    (mem, entry)
}

fn exact(mem: &Mem, query: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut all: Vec<Near<u32>> = (0..mem.vectors.len() as u32)
        .filter(|&id| keep(id))
        .map(|id| Near {
            distance: mem.metric.distance(query, &mem.vectors[id as usize]),
            id,
        })
        .collect();
    all.sort();
    all.into_iter().take(k).map(|n| n.id).collect()
}

/// The first `k` nodes a scan yields that `keep` accepts.
fn scan_k(
    mem: &mut Mem,
    entry: Option<Entry<u32>>,
    query: &[f32],
    k: usize,
    ef: usize,
    keep: impl Fn(u32) -> bool,
) -> Vec<u32> {
    let mut scan = Scan::new(query, ef);
    let mut out = Vec::new();
    while out.len() < k {
        match scan.next(mem, entry).unwrap() {
            Some(n) if keep(n.id) => out.push(n.id),
            Some(_) => {}
            None => break,
        }
    }
    out
}

fn recall(got: &[u32], want: &[u32]) -> f64 {
    let want: HashSet<_> = want.iter().collect();
    got.iter().filter(|id| want.contains(id)).count() as f64 / want.len().max(1) as f64
}

#[test]
fn options_out_of_range_are_refused_with_their_bounds() {
    assert_eq!(Params::new(16, 64), Ok(Params::default()));
    assert_eq!(Params::new(1, 64), Err(ParamsError::M));
    assert_eq!(Params::new(101, 1000), Err(ParamsError::M));
    assert_eq!(Params::new(16, 3), Err(ParamsError::EfConstruction));
    assert_eq!(Params::new(16, 1001), Err(ParamsError::EfConstruction));
    assert_eq!(Params::new(16, 31), Err(ParamsError::EfConstructionBelowM));
    assert_eq!(ParamsError::M.to_string(), "m must be between 2 and 100");
    assert_eq!(ef_search(0), Err(ParamsError::EfSearch));
    assert_eq!(ef_search(1001), Err(ParamsError::EfSearch));
    assert_eq!(ef_search(40), Ok(40));
}

#[test]
fn levels_thin_out_by_a_factor_of_m() {
    let p = Params::default();
    let mut rng = Rng(1);
    let n = 200_000;
    let levels: Vec<usize> = (0..n).map(|_| p.level_for(rng.unit())).collect();
    let above0 = levels.iter().filter(|&&l| l >= 1).count() as f64 / n as f64;
    let above1 = levels.iter().filter(|&&l| l >= 2).count() as f64 / n as f64;
    assert!((above0 - 1.0 / 16.0).abs() < 0.005, "{above0}");
    assert!((above1 - 1.0 / 256.0).abs() < 0.001, "{above1}");
    assert!(levels.iter().all(|&l| l <= MAX_LEVEL));
    assert_eq!(p.level_for(0.0), 0, "an out-of-range draw is level 0");
    assert_eq!(p.level_for(1e-300), MAX_LEVEL);
}

#[test]
fn clustered_data_is_found_with_high_recall_and_no_query_misses_its_cluster() {
    let (data, queries) = data_and_queries(7, 3000, 100, 16, 40, 0.3);
    for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct, Metric::L1] {
        let (mut mem, entry) = build(metric, data.clone(), &Params::default(), 11);
        let mut total = 0.0;
        for q in &queries {
            let got = scan_k(&mut mem, entry, q, 10, 40, |_| true);
            let r = recall(&got, &exact(&mem, q, 10, |_| true));
            assert!(r > 0.0, "{metric:?}: a query found none of its 10 nearest");
            total += r;
        }
        let mean = total / queries.len() as f64;
        assert!(mean >= 0.95, "{metric:?}: recall@10 {mean}");
    }
}

#[test]
fn tight_well_separated_clusters_are_all_reached() {
    // 100 clusters of 30 points, each far from every other: the case where a greedy descent
    // lands in the wrong cluster and a small beam never leaves it.
    let (data, queries) = data_and_queries(41, 3000, 100, 16, 100, 0.05);
    for seed in 0..3 {
        let (mut mem, entry) = build(Metric::L2, data.clone(), &Params::default(), seed);
        for q in &queries {
            let got = scan_k(&mut mem, entry, q, 10, 10, |_| true);
            assert!(
                recall(&got, &exact(&mem, q, 10, |_| true)) > 0.0,
                "seed {seed}: a cluster was not reached"
            );
        }
    }
}

#[test]
fn neighbour_lists_stay_within_their_bounds_and_never_name_the_node_itself() {
    let p = Params::new(4, 16).unwrap();
    let (mem, _) = build(Metric::L2, clustered(&mut Rng(3), 800, 8, 10, 0.5), &p, 5);
    for (id, lists) in mem.lists.iter().enumerate() {
        for (level, list) in lists.iter().enumerate() {
            assert!(list.len() <= p.max_neighbours(level));
            assert!(!list.contains(&(id as u32)));
            let unique: HashSet<_> = list.iter().collect();
            assert_eq!(unique.len(), list.len());
            for &n in list {
                assert!(
                    mem.lists[n as usize].len() > level,
                    "a link to a node without level {level}"
                );
            }
        }
    }
}

#[test]
fn a_scan_yields_every_node_exactly_once_even_those_the_walk_cannot_reach() {
    let (mut mem, entry) = build(
        Metric::L2,
        clustered(&mut Rng(5), 600, 8, 6, 0.4),
        &Params::default(),
        2,
    );
    // Cut nodes 0..50 off: no list names them, and theirs are empty.
    let cut: HashSet<u32> = (0..50).collect();
    for id in 0..mem.lists.len() {
        for level in 0..mem.lists[id].len() {
            if cut.contains(&(id as u32)) {
                mem.lists[id][level].clear();
            } else {
                mem.lists[id][level].retain(|n| !cut.contains(n));
            }
        }
    }
    let entry = entry
        .filter(|e| !cut.contains(&e.id))
        .or(Some(Entry { id: 100, level: 0 }));
    let q = mem.vectors[3].clone();
    let mut scan = Scan::new(&q, 10);
    let mut seen = Vec::new();
    while let Some(n) = scan.next(&mut mem, entry).unwrap() {
        seen.push(n.id);
    }
    assert_eq!(seen.len(), 600);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 600);
    // A query at a cut-off node still gets that node, from the exhaustive end.
    assert!(seen.contains(&3));
}

#[test]
fn an_empty_graph_yields_nothing_and_a_single_node_itself() {
    let mut mem = Mem {
        metric: Metric::L2,
        vectors: vec![],
        lists: vec![],
    };
    assert!(Scan::new(&[1.0, 2.0], 40)
        .next(&mut mem, None)
        .unwrap()
        .is_none());
    let (mut mem, entry) = build(Metric::L2, vec![vec![1.0, 2.0]], &Params::default(), 1);
    let mut scan = Scan::new(&[0.0, 0.0], 40);
    assert_eq!(scan.next(&mut mem, entry).unwrap().map(|n| n.id), Some(0));
    assert!(scan.next(&mut mem, entry).unwrap().is_none());
}

#[test]
fn a_selective_filter_never_makes_results_short() {
    let (data, queries) = data_and_queries(8, 2000, 30, 12, 20, 0.5);
    let (mut mem, entry) = build(Metric::Cosine, data, &Params::default(), 4);
    let mut total = 0.0;
    for q in &queries {
        // 2% of the rows pass.
        let keep = |id: u32| id % 50 == 7;
        let got = scan_k(&mut mem, entry, q, 10, 40, keep);
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|&id| keep(id)));
        total += recall(&got, &exact(&mem, q, 10, keep));
        // Three rows pass: all three come back.
        let few = |id: u32| id == 5 || id == 777 || id == 1999;
        let mut got = scan_k(&mut mem, entry, q, 10, 40, few);
        got.sort();
        assert_eq!(got, vec![5, 777, 1999]);
    }
    assert!(
        total / queries.len() as f64 >= 0.9,
        "filtered recall {}",
        total / queries.len() as f64
    );
}

#[test]
fn repair_unlinks_deleted_nodes_and_search_stays_good() {
    let p = Params::default();
    let (data, queries) = data_and_queries(12, 2000, 50, 16, 20, 0.3);
    let (mut mem, _) = build(Metric::L2, data, &p, 6);
    let mut rng = Rng(44);
    let deleted: HashSet<u32> = (0..2000u32).filter(|_| rng.unit() < 0.25).collect();
    let is_deleted = |id: u32| deleted.contains(&id);
    let mut changed = 0;
    for id in 0..2000u32 {
        if is_deleted(id) {
            continue;
        }
        for level in 0..mem.lists[id as usize].len() {
            changed += usize::from(repair(&mut mem, &p, id, level, &is_deleted).unwrap());
        }
    }
    assert!(changed > 0);
    for id in (0..2000u32).filter(|&id| !is_deleted(id)) {
        for list in &mem.lists[id as usize] {
            assert!(
                list.iter().all(|&n| !is_deleted(n)),
                "node {id} still links a deleted node"
            );
        }
    }
    // A new entry point among the live nodes of the top level.
    let top = (0..2000u32)
        .filter(|&id| !is_deleted(id))
        .max_by_key(|&id| mem.lists[id as usize].len())
        .unwrap();
    let entry = Some(Entry {
        id: top,
        level: mem.lists[top as usize].len() - 1,
    });
    let mut total = 0.0;
    for q in &queries {
        let live = |id: u32| !deleted.contains(&id);
        let got = scan_k(&mut mem, entry, q, 10, 40, live);
        total += recall(&got, &exact(&mem, q, 10, live));
    }
    assert!(
        total / queries.len() as f64 >= 0.95,
        "recall after repair {}",
        total / queries.len() as f64
    );
}

#[test]
fn a_memory_graph_builds_the_same_graph_as_inserts_through_a_store() {
    let (data, queries) = data_and_queries(31, 1500, 20, 12, 15, 0.4);
    let p = Params::default();
    let mut rng = Rng(9);
    let mut g = memory::MemoryGraph::new(Space::new(Metric::L2), 12);
    let mut levels = Vec::new();
    for (i, v) in data.iter().enumerate() {
        let level = p.level_for(rng.unit());
        levels.push(level);
        g.add(
            &p,
            ItemId {
                block: i as u32 / 10,
                offset: (i % 10) as u16 + 1,
            },
            v,
            level,
        );
    }
    let (mut mem, entry) = build(Metric::L2, data.clone(), &p, 9);
    assert_eq!(g.len(), 1500);
    assert_eq!(g.entry(), entry);
    for id in 0..1500u32 {
        assert_eq!(g.lists(id), mem.lists[id as usize].as_slice());
        assert_eq!(g.vector(id), data[id as usize].as_slice());
        assert_eq!(
            g.heap(id),
            ItemId {
                block: id / 10,
                offset: (id % 10) as u16 + 1
            }
        );
    }
    assert!(g.bytes() >= 1500 * 12 * 4);
    let g_entry = g.entry();
    for q in &queries {
        let mut a = Scan::new(q, 40);
        let mut b = Scan::new(q, 40);
        for _ in 0..10 {
            assert_eq!(
                a.next(&mut g, g_entry).unwrap().map(|n| n.id),
                b.next(&mut mem, entry).unwrap().map(|n| n.id)
            );
        }
    }
}

#[test]
fn an_exact_scan_yields_every_node_in_exact_order() {
    let (data, queries) = data_and_queries(2, 300, 5, 6, 3, 1.0);
    let (mut mem, entry) = build(Metric::Cosine, data, &Params::default(), 3);
    for q in &queries {
        let mut scan = Scan::exact(q);
        let mut got = Vec::new();
        while let Some(n) = scan.next(&mut mem, entry).unwrap() {
            got.push(n.id);
        }
        assert_eq!(got, exact(&mem, q, 300, |_| true));
    }
}

#[test]
fn nodes_are_placed_whole_on_pages_in_order() {
    use memory::{item_cost, place};
    // 3 KB elements and 200-byte lists: two nodes to an 8,160-byte page.
    let sizes = vec![(3084, 196); 5];
    let placed = place(sizes.clone(), 7, 8160).unwrap();
    assert_eq!(
        placed,
        vec![
            ItemId {
                block: 7,
                offset: 1
            },
            ItemId {
                block: 7,
                offset: 3
            },
            ItemId {
                block: 8,
                offset: 1
            },
            ItemId {
                block: 8,
                offset: 3
            },
            ItemId {
                block: 9,
                offset: 1
            },
        ]
    );
    assert_eq!(item_cost(3084), 3088 + 4);
    assert_eq!(item_cost(196), 200 + 4);
    // A node that cannot fit an empty page.
    assert_eq!(place(vec![(100, 10), (8200, 10)], 1, 8160), Err(1));
    assert_eq!(place(Vec::<(usize, usize)>::new(), 1, 8160), Ok(vec![]));
}

#[test]
fn a_space_scores_in_the_metrics_order_and_gives_back_its_distances() {
    let mut rng = Rng(17);
    for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct, Metric::L1] {
        let space = Space::new(metric);
        let q: Vec<f32> = (0..24).map(|_| rng.gauss()).collect();
        let vs: Vec<Vec<f32>> = (0..200)
            .map(|_| (0..24).map(|_| rng.gauss()).collect())
            .collect();
        let pq = space.prepare(&q).unwrap();
        let mut by_score: Vec<(f64, usize)> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| (space.score(&pq, &space.prepare(v).unwrap()), i))
            .collect();
        let mut by_distance: Vec<(f64, usize)> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| (metric.distance(&q, v), i))
            .collect();
        by_score.sort_by(|a, b| a.0.total_cmp(&b.0));
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(
            by_score.iter().map(|x| x.1).collect::<Vec<_>>(),
            by_distance.iter().map(|x| x.1).collect::<Vec<_>>(),
            "{metric:?}"
        );
        for (s, d) in by_score.iter().zip(&by_distance) {
            assert!(
                (space.distance(s.0) - d.0).abs() < 1e-4 * d.0.abs().max(1.0),
                "{metric:?}: {} vs {}",
                space.distance(s.0),
                d.0
            );
        }
    }
    let cosine = Space::new(Metric::Cosine);
    assert_eq!(cosine.prepare(&[0.0, 0.0]), None);
    let n = cosine.prepare(&[3.0, 4.0]).unwrap();
    assert!((n[0] - 0.6).abs() < 1e-7 && (n[1] - 0.8).abs() < 1e-7);
    assert_eq!(
        Space::new(Metric::L2).prepare(&[3.0, 4.0]),
        Some(vec![3.0, 4.0])
    );
}

#[test]
fn a_frozen_graph_scans_as_the_graph_it_was_read_from() {
    let (data, queries) = data_and_queries(41, 1200, 10, 12, 15, 0.4);
    let p = Params::default();
    let mut rng = Rng(3);
    let mut g = memory::MemoryGraph::new(Space::new(Metric::L2), 12);
    for (i, v) in data.iter().enumerate() {
        g.add(
            &p,
            ItemId {
                block: 1000 + i as u32,
                offset: 1,
            },
            v,
            p.level_for(rng.unit()),
        );
    }
    let at = |i: u32| ItemId {
        block: i / 8 + 1,
        offset: (i % 8) as u16 * 2 + 1,
    };
    let dead = at(17);
    let nodes = (0..g.len() as u32).map(|i| frozen::FrozenNode {
        id: at(i),
        heap: g.heap(i),
        live: at(i) != dead,
        vector: g.vector(i).to_vec(),
        lists: g
            .lists(i)
            .iter()
            .map(|l| l.iter().map(|&n| at(n)).collect())
            .collect(),
    });
    let mut f = frozen::Frozen::new(Space::new(Metric::L2), 12, nodes);
    assert_eq!(f.len(), 1200);
    assert_eq!(f.element(at(5)), Some((g.heap(5), true)));
    assert_eq!(f.element(dead), Some((g.heap(17), false)));
    assert_eq!(
        f.element(ItemId {
            block: 9999,
            offset: 1
        }),
        None
    );
    assert!(!f.all().unwrap().contains(&dead));
    assert_eq!(f.set_neighbours(at(1), 0, &[]), Err(frozen::ReadOnly));
    let entry = g.entry().unwrap();
    for q in &queries {
        let mut over_memory = Scan::new(q, 40);
        let mut over_frozen = Scan::new(q, 40);
        for _ in 0..60 {
            let a = over_memory.next(&mut g, Some(entry)).unwrap().unwrap();
            let b = over_frozen
                .next(
                    &mut f,
                    Some(Entry {
                        id: at(entry.id),
                        level: entry.level,
                    }),
                )
                .unwrap()
                .unwrap();
            assert_eq!(at(a.id), b.id);
            assert_eq!(a.distance, b.distance);
        }
    }
}

use super::*;

#[test]
fn lag_is_how_far_replay_is_behind_never_negative() {
    assert_eq!(lag(1000, 400), 600);
    assert_eq!(lag(1000, 1000), 0);
    assert_eq!(lag(1000, 1200), 0);
}

#[test]
fn a_replica_serves_reads_only_as_a_standby_within_the_lag_bound() {
    let seen = |standby, lag| Some(Seen { standby, lag });
    assert!(usable(seen(true, Some(0)), 100));
    assert!(usable(seen(true, Some(100)), 100));
    assert!(!usable(seen(true, Some(101)), 100));
    // Promoted (no longer a standby): another timeline, never read from.
    assert!(!usable(seen(false, Some(0)), 100));
    // Unreachable.
    assert!(!usable(None, 100));
    // The primary's position unknown (the primary is down): the standby still serves.
    assert!(usable(seen(true, None), 100));
}

#[test]
fn an_unknown_primary_position_keeps_the_last_lag() {
    let seen = |lag| Some(Seen { standby: true, lag });
    // Far behind at the last look, then the primary's position unreadable: still far behind.
    assert!(!usable(with_last_lag(seen(None), Some(1000)), 100));
    assert_eq!(with_last_lag(seen(Some(5)), Some(1000)), seen(Some(5)));
    assert_eq!(with_last_lag(seen(None), None), seen(None));
    assert_eq!(with_last_lag(None, Some(5)), None);
}

#[test]
fn reads_take_turns_over_the_usable_replicas() {
    let ok = |i: usize| i != 1;
    assert_eq!(choose(3, 0, ok), Some(0));
    assert_eq!(choose(3, 1, ok), Some(2));
    assert_eq!(choose(3, 2, ok), Some(2));
    assert_eq!(choose(3, 4, ok), Some(2));
    assert_eq!(choose(3, 5, ok), Some(2));
    assert_eq!(choose(3, 3, ok), Some(0));
    assert_eq!(choose(3, 0, |_| false), None);
    assert_eq!(choose(0, 0, |_| true), None);
}

#[test]
fn a_writer_reads_from_the_primary_for_the_window_only() {
    let w = RecentWrites::new(Duration::from_secs(5));
    let t0 = Instant::now();
    assert!(!w.recent("token-a", t0));
    w.note("token-a", t0);
    assert!(w.recent("token-a", t0 + Duration::from_secs(4)));
    assert!(!w.recent("token-a", t0 + Duration::from_secs(5)));
    assert!(!w.recent("token-b", t0));
    let off = RecentWrites::new(Duration::ZERO);
    off.note("token-a", t0);
    assert!(!off.recent("token-a", t0));
}

#[test]
fn recent_writers_stay_bounded() {
    let w = RecentWrites::new(Duration::from_secs(5));
    let t0 = Instant::now();
    for i in 0..RECENT_WRITES_LIMIT {
        w.note(&format!("old-{i}"), t0);
    }
    assert_eq!(w.len(), RECENT_WRITES_LIMIT);
    // Past the window, the old ones make room.
    w.note("new", t0 + Duration::from_secs(6));
    assert_eq!(w.len(), 1);
    assert!(w.recent("new", t0 + Duration::from_secs(6)));
    // Within it, the map is emptied rather than grown.
    for i in 0..RECENT_WRITES_LIMIT {
        w.note(&format!("more-{i}"), t0 + Duration::from_secs(7));
    }
    w.note("last", t0 + Duration::from_secs(7));
    assert!(w.len() <= RECENT_WRITES_LIMIT);
}

#[test]
fn without_replicas_every_read_goes_to_the_primary() {
    let r = Replicas::new(Vec::new(), 0, Duration::ZERO);
    assert!(r.pick("t").is_none());
    assert!(r.states().is_empty());
}

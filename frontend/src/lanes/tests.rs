use super::*;

#[test]
fn an_idle_lane_comes_first_then_an_unopened_one() {
    assert_eq!(choose([Some(2), Some(0), None], 8), Choice::Join(1));
    assert_eq!(choose([Some(2), None, Some(1), None], 8), Choice::Open(1));
    assert_eq!(choose([None, None], 8), Choice::Open(0));
}

#[test]
fn busy_lanes_share_the_least_loaded_below_the_depth() {
    assert_eq!(choose([Some(3), Some(1), Some(2)], 8), Choice::Join(1));
    // The first of equals, so one lane fills before the next is joined again.
    assert_eq!(choose([Some(2), Some(2)], 8), Choice::Join(0));
    assert_eq!(choose([Some(8), Some(7)], 8), Choice::Join(1));
    assert_eq!(choose([Some(1)], 2), Choice::Join(0));
}

#[test]
fn every_lane_at_the_depth_is_overload() {
    assert_eq!(choose([Some(8), Some(9)], 8), Choice::Full);
    assert_eq!(choose([Some(1)], 1), Choice::Full);
    assert_eq!(choose(std::iter::empty(), 8), Choice::Full);
}

use super::*;
use crate::config::{Cli, Config};
use clap::Parser;

fn limits(extra: &[&str]) -> Limits {
    let mut argv = vec!["gw", "--pg-url", "postgres://gw:pw@127.0.0.1/db"];
    argv.extend_from_slice(extra);
    Limits::new(&Config::from_cli(Cli::try_parse_from(argv).unwrap()).unwrap())
}

#[test]
fn per_ip_allows_a_burst_of_twice_the_rate_then_refuses() {
    let l = limits(&["--rate-per-ip", "5"]);
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let other: IpAddr = "10.0.0.2".parse().unwrap();
    for _ in 0..10 {
        assert!(l.check_ip(ip).is_ok());
    }
    let wait = l.check_ip(ip).unwrap_err();
    assert!((1..=1).contains(&wait), "{wait}");
    assert!(
        l.check_ip(other).is_ok(),
        "another address has its own allowance"
    );
}

#[test]
fn per_credential_keys_are_separate() {
    let l = limits(&["--rate-per-key", "1"]);
    let a = Principal::Verified("alice".into());
    let b = Principal::Unverified([7; 32]);
    assert!(l.check_principal(&a).is_ok());
    assert!(l.check_principal(&a).is_ok());
    assert!(l.check_principal(&a).is_err());
    assert!(l.check_principal(&b).is_ok());
}

#[test]
fn repeated_failures_throttle_the_address_for_the_penalty() {
    let l = limits(&[
        "--auth-failures-per-minute",
        "3",
        "--auth-penalty-secs",
        "120",
    ]);
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    assert!(l.check_throttled(ip).is_ok());
    assert!(!l.record_failure(ip));
    assert!(!l.record_failure(ip));
    assert!(!l.record_failure(ip));
    assert!(l.check_throttled(ip).is_ok(), "within the allowance");
    assert!(l.record_failure(ip), "the fourth starts the penalty");
    let wait = l.check_throttled(ip).unwrap_err();
    assert!((119..=120).contains(&wait), "{wait}");
    assert!(!l.record_failure(ip), "already throttled");
    assert!(l.check_throttled("192.0.2.8".parse().unwrap()).is_ok());
}

#[test]
fn retry_after_rounds_up() {
    assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
    assert_eq!(ceil_secs(Duration::ZERO), 1);
    assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
    assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
}

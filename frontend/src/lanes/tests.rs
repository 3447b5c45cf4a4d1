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

/// The gateway's read lanes, as `db::pools` makes them, towards a server that accepts
/// connections and never answers; 2 read connections, a connect timeout of 1 s.
async fn lanes_to_a_silent_server() -> (Arc<Lanes>, tokio::task::JoinHandle<()>) {
    use clap::Parser;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let url = format!("postgres://nobody:pw@127.0.0.1:{port}/none");
    let cli = crate::config::Cli::try_parse_from([
        "sealstore-gateway",
        "--pg-url",
        &url,
        "--db-read-connections",
        "2",
        "--db-timeout-secs",
        "1",
    ])
    .unwrap();
    let config = crate::config::Config::from_cli(cli).unwrap();
    (crate::db::pools(&config).unwrap().reads, held)
}

#[tokio::test]
async fn calls_waiting_on_a_failed_connect_share_its_failure() {
    let timeout = std::time::Duration::from_secs(1);
    let (lanes, held) = lanes_to_a_silent_server().await;
    let began = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.lend().await.err() })
        })
        .collect();
    for call in calls {
        let e = call.await.unwrap().expect("nothing to connect to");
        assert!(matches!(e, DbError::Unavailable(_)), "{e:?}");
    }
    // All six choose the first unopened lane: one attempt fails at the timeout, and the other
    // five share its failure instead of each trying again in turn (6 x 1 s).
    let took = began.elapsed();
    assert!(took < timeout * 2, "{took:?}");
    // A later call tries again.
    let again = Instant::now();
    assert!(lanes.lend().await.is_err());
    assert!(again.elapsed() >= timeout);
    held.abort();
}

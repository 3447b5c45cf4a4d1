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

/// A pool whose server accepts connections and never answers, with a short connect timeout.
async fn silent_server_pool(timeout: std::time::Duration) -> (Pool, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let mut pg = tokio_postgres::Config::new();
    pg.host("127.0.0.1")
        .port(port)
        .user("nobody")
        .dbname("none");
    let manager = deadpool_postgres::Manager::new(pg, tokio_postgres::NoTls);
    let pool = Pool::builder(manager)
        .max_size(2)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .timeouts(deadpool_postgres::Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        })
        .build()
        .unwrap();
    (pool, held)
}

#[tokio::test]
async fn calls_waiting_on_a_failed_connect_share_its_failure() {
    let timeout = std::time::Duration::from_millis(300);
    let (pool, held) = silent_server_pool(timeout).await;
    let lanes = Arc::new(Lanes::new(pool, 8));
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
    // Two lanes, so two attempts in parallel; the other calls wait for one of them and fail
    // with it, instead of trying again each in turn (which would take 3 x 300 ms).
    let took = began.elapsed();
    assert!(took < timeout * 2, "{took:?}");
    // A later call tries again.
    let again = Instant::now();
    assert!(lanes.lend().await.is_err());
    assert!(again.elapsed() >= timeout);
    held.abort();
}

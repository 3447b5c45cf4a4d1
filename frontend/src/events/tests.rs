use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use sealstore_core::events::Position;

use super::*;

fn hub(max: usize, buffer: usize) -> Hub {
    let hub = Hub::new(max, buffer, Arc::new(Metrics::new()));
    hub.start_at(Position { xid: 10, id: 0 });
    hub
}

fn event(xid: u64, tenant: &str, text: &str) -> FeedEvent {
    FeedEvent {
        position: Position { xid, id: 1 },
        tenant: tenant.to_owned(),
        frame: Some(Bytes::from(text.to_owned())),
    }
}

fn drain(sub: &mut Subscription) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok((_, frame)) = sub.live.try_recv() {
        out.push(String::from_utf8(frame.to_vec()).unwrap());
    }
    out
}

#[test]
fn no_subscription_before_the_feed_has_read_the_database() {
    let hub = Hub::new(10, 4, Arc::new(Metrics::new()));
    assert_eq!(hub.subscribe("a", "t").err(), Some(Refused::NotReady));
    hub.start_at(Position { xid: 5, id: 2 });
    let sub = hub.subscribe("a", "t").unwrap();
    assert_eq!(sub.start, Position { xid: 5, id: 2 });
    // The place is set once; the feed moves it on by dispatching.
    hub.start_at(Position { xid: 1, id: 1 });
    assert_eq!(hub.cursor(), Some(Position { xid: 5, id: 2 }));
}

#[test]
fn a_tenant_hears_only_its_own_events() {
    let hub = hub(10, 8);
    let mut a = hub.subscribe("a", "ta").unwrap();
    let mut b = hub.subscribe("b", "tb").unwrap();
    hub.dispatch(&[
        event(11, "a", "a1"),
        event(12, "b", "b1"),
        event(13, "c", "c1"),
        event(14, "a", "a2"),
    ]);
    assert_eq!(drain(&mut a), ["a1", "a2"]);
    assert_eq!(drain(&mut b), ["b1"]);
    assert_eq!(hub.cursor(), Some(Position { xid: 14, id: 1 }));
    // A later subscriber begins after what was dispatched.
    assert_eq!(
        hub.subscribe("a", "ta").unwrap().start,
        Position { xid: 14, id: 1 }
    );
}

#[test]
fn an_event_no_one_may_see_moves_the_place_only() {
    let hub = hub(10, 8);
    let mut a = hub.subscribe("a", "ta").unwrap();
    hub.dispatch(&[FeedEvent {
        position: Position { xid: 20, id: 3 },
        tenant: "a".into(),
        frame: None,
    }]);
    assert!(drain(&mut a).is_empty());
    assert_eq!(hub.cursor(), Some(Position { xid: 20, id: 3 }));
}

#[test]
fn a_full_buffer_disconnects_that_subscriber_only() {
    let hub = hub(10, 2);
    let mut slow = hub.subscribe("a", "slow").unwrap();
    let mut fast = hub.subscribe("a", "fast").unwrap();
    for xid in 11..14 {
        hub.dispatch(&[event(xid, "a", &format!("e{xid}"))]);
        drain(&mut fast);
    }
    assert_eq!(slow.closing.reason(), Some(End::TooSlow));
    assert_eq!(fast.closing.reason(), None);
    // What was buffered stays bounded, and the hub holds nothing more for it.
    assert_eq!(drain(&mut slow).len(), 2);
    hub.dispatch(&[event(20, "a", "later")]);
    assert!(drain(&mut slow).is_empty());
    assert_eq!(drain(&mut fast), ["later"]);
    assert_eq!(hub.lock().count, 1);
}

#[test]
fn revoked_tokens_are_disconnected_and_others_stay() {
    let hub = hub(10, 4);
    let a1 = hub.subscribe("a", "t1").unwrap();
    let a2 = hub.subscribe("a", "t2").unwrap();
    let b1 = hub.subscribe("b", "t1").unwrap();
    assert_eq!(hub.tokens(), ["t1", "t2"]);
    hub.revoke(&["t1".to_owned()]);
    assert_eq!(a1.closing.reason(), Some(End::CredentialRevoked));
    assert_eq!(b1.closing.reason(), Some(End::CredentialRevoked));
    assert_eq!(a2.closing.reason(), None);
    assert_eq!(hub.tokens(), ["t2"]);
}

#[test]
fn the_limit_and_shutting_down_refuse_new_subscribers() {
    let hub = hub(2, 4);
    let first = hub.subscribe("a", "t").unwrap();
    let _second = hub.subscribe("b", "t").unwrap();
    assert_eq!(hub.subscribe("c", "t").err(), Some(Refused::Full));
    hub.unsubscribe("a", first.id);
    let third = hub.subscribe("c", "t").unwrap();
    hub.close_all();
    assert_eq!(third.closing.reason(), Some(End::ShuttingDown));
    assert_eq!(hub.subscribe("d", "t").err(), Some(Refused::Full));
    assert_eq!(hub.lock().count, 0);
}

#[test]
fn last_event_id_must_be_one_short_visible_value() {
    let mut headers = hyper::HeaderMap::new();
    assert_eq!(last_event_id(&headers).ok(), Some(None));
    headers.insert("last-event-id", "abc_-123".parse().unwrap());
    assert_eq!(last_event_id(&headers).ok(), Some(Some("abc_-123".into())));
    for bad in ["a b", "", &"x".repeat(257)] {
        headers.insert("last-event-id", bad.parse().unwrap());
        assert!(last_event_id(&headers).is_err(), "{bad:?}");
    }
    headers.insert("last-event-id", "one".parse().unwrap());
    headers.append("last-event-id", "two".parse().unwrap());
    assert!(last_event_id(&headers).is_err());
}

async fn text(body: EventBody) -> String {
    let bytes = body.collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_stream_that_must_end_sends_its_reason_last_and_nothing_after() {
    let (tx, rx) = mpsc::channel(8);
    let closing = Arc::new(Closing::default());
    let body = EventBody {
        rx,
        closing: closing.clone(),
        ended: false,
    };
    tx.send(Bytes::from_static(b"queued\n\n")).await.unwrap();
    closing.close(End::CredentialRevoked);
    tx.send(Bytes::from_static(b"after\n\n")).await.unwrap();
    drop(tx);
    let out = text(body).await;
    assert!(out.starts_with("event: error\n"), "{out}");
    assert!(out.contains("\"credential_revoked\""), "{out}");
    assert!(!out.contains("queued") && !out.contains("after"), "{out}");
}

#[tokio::test]
async fn a_resume_too_old_is_one_error_event() {
    let out = text(ended(End::ResumeTooOld)).await;
    assert_eq!(out.matches("event: error").count(), 1);
    assert!(out.contains("resume_too_old"));
}

#[tokio::test]
async fn a_stream_that_ends_without_reason_just_ends() {
    let (tx, rx) = mpsc::channel(8);
    let body = EventBody {
        rx,
        closing: Arc::new(Closing::default()),
        ended: false,
    };
    tx.send(Bytes::from_static(b"id: x\n\n")).await.unwrap();
    drop(tx);
    assert_eq!(text(body).await, "id: x\n\n");
}

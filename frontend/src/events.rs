//! The change feed, `GET /v1/events`: Server-Sent Events of the caller's tenant.
//!
//! One listening connection per gateway ([`run`]) sleeps in the database until a writer
//! commits (`sealstore.gateway_events_wait`), reads every tenant's new events once
//! (`gateway_events_read`) and hands each, in the [`Hub`], to the subscribers of its tenant
//! only: a thousand subscribers cost no more database reads than one. Writers never wait for
//! the feed (no NOTIFY). When keys or credentials change, the same connection checks every
//! subscriber's token again in one call, and those refused are disconnected at once.
//!
//! Each subscriber has a bounded buffer in the hub; one that fills it is disconnected
//! (`too_slow`) rather than held in memory, and resumes with `Last-Event-ID`. Its stream task
//! ([`stream`]) first reads the events it missed from the database (a resume), then forwards
//! live ones, sends heartbeats while idle and ends the stream when its token expires. Event
//! ids are sealed by the database for the tenant (see `sealstore_core::events`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use deadpool_postgres::Pool;
use hyper::body::Frame;
use hyper::header::HeaderValue;
use hyper::Response;
use sealstore_core::events::Position;
use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::types::Type;

use crate::errors::{self, DbError, Failure};
use crate::metrics::{Metrics, ReasonLabels};
use crate::response::Body;
use crate::state::AppState;

/// Events read from the database per query.
const PAGE: i32 = 256;
/// How often the listening connection purges events past their retention.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Frames queued between a subscriber's stream task and its HTTP body.
const OUT_QUEUE: usize = 16;

/// Why a stream ended, as its last (error) event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    TokenExpired,
    CredentialRevoked,
    TooSlow,
    ResumeTooOld,
    ShuttingDown,
    Unavailable,
}

impl End {
    pub fn code(self) -> &'static str {
        match self {
            End::TokenExpired => "token_expired",
            End::CredentialRevoked => "credential_revoked",
            End::TooSlow => "too_slow",
            End::ResumeTooOld => "resume_too_old",
            End::ShuttingDown => "shutting_down",
            End::Unavailable => "unavailable",
        }
    }

    fn message(self) -> &'static str {
        match self {
            End::TokenExpired => "the credential has expired",
            End::CredentialRevoked => "the credential is no longer accepted",
            End::TooSlow => "events were not read fast enough; resume with Last-Event-ID",
            End::ResumeTooOld => {
                "the events after Last-Event-ID are no longer kept; read the current state again"
            }
            End::ShuttingDown => "the gateway is shutting down; resume with Last-Event-ID",
            End::Unavailable => "the database is unavailable; resume with Last-Event-ID",
        }
    }

    /// The stream's last event.
    pub fn frame(self) -> Bytes {
        let data = json!({"error": {"code": self.code(), "message": self.message()}});
        Bytes::from(format!("event: error\ndata: {data}\n\n"))
    }
}

/// How a subscriber is told to stop: the reason, set once, and a wake-up for its task.
#[derive(Default)]
pub struct Closing {
    reason: OnceLock<End>,
    notify: Notify,
}

impl Closing {
    fn close(&self, why: End) {
        let _ = self.reason.set(why);
        self.notify.notify_one();
    }

    fn reason(&self) -> Option<End> {
        self.reason.get().copied()
    }
}

struct Subscriber {
    id: u64,
    token: String,
    /// The hub's end of the subscriber's buffer; dropped when the hub lets it go.
    live: mpsc::Sender<(Position, Bytes)>,
    closing: Arc<Closing>,
}

#[derive(Default)]
struct Inner {
    /// The last position handed out; none until the listening connection has read the feed's
    /// end once.
    cursor: Option<Position>,
    /// Subscribers by tenant.
    tenants: HashMap<String, Vec<Subscriber>>,
    count: usize,
    closed: bool,
}

/// One event as the database hands it to the gateway.
pub struct FeedEvent {
    pub position: Position,
    pub tenant: String,
    /// The SSE frame; none for an event that no one may see (its tenant was shredded).
    pub frame: Option<Bytes>,
}

/// Why a subscription was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The feed has not read the database yet (it is down): 503.
    NotReady,
    /// `SEALSTORE_EVENTS_MAX_SUBSCRIBERS` reached, or shutting down: 503.
    Full,
}

/// A new subscriber's end: its buffer, how it is told to stop, and where live events begin.
pub struct Subscription {
    pub id: u64,
    pub live: mpsc::Receiver<(Position, Bytes)>,
    pub closing: Arc<Closing>,
    pub start: Position,
}

/// Subscribers by tenant, and the feed's place.
pub struct Hub {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    max_subscribers: usize,
    buffer: usize,
    metrics: Arc<Metrics>,
}

impl Hub {
    pub fn new(max_subscribers: usize, buffer: usize, metrics: Arc<Metrics>) -> Hub {
        Hub {
            inner: Mutex::default(),
            next_id: AtomicU64::new(1),
            max_subscribers,
            buffer,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a subscriber of `tenant`; live events after the returned `start` reach it.
    pub fn subscribe(&self, tenant: &str, token: &str) -> Result<Subscription, Refused> {
        let mut inner = self.lock();
        let start = inner.cursor.ok_or(Refused::NotReady)?;
        if inner.closed || inner.count >= self.max_subscribers {
            return Err(Refused::Full);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.buffer);
        let closing = Arc::new(Closing::default());
        inner
            .tenants
            .entry(tenant.to_owned())
            .or_default()
            .push(Subscriber {
                id,
                token: token.to_owned(),
                live: tx,
                closing: closing.clone(),
            });
        inner.count += 1;
        self.metrics.event_subscribers.set(inner.count as i64);
        Ok(Subscription {
            id,
            live: rx,
            closing,
            start,
        })
    }

    /// Forgets subscriber `id` of `tenant` (its stream ended).
    pub fn unsubscribe(&self, tenant: &str, id: u64) {
        let mut inner = self.lock();
        let Some(subs) = inner.tenants.get_mut(tenant) else {
            return;
        };
        let before = subs.len();
        subs.retain(|s| s.id != id);
        let removed = before - subs.len();
        if subs.is_empty() {
            inner.tenants.remove(tenant);
        }
        inner.count -= removed;
        self.metrics.event_subscribers.set(inner.count as i64);
    }

    /// Where the feed is; none before it has read the database.
    pub fn cursor(&self) -> Option<Position> {
        self.lock().cursor
    }

    /// Sets where the feed begins (once, when it first reads the database).
    pub fn start_at(&self, position: Position) {
        let mut inner = self.lock();
        if inner.cursor.is_none() {
            inner.cursor = Some(position);
        }
    }

    /// Hands `events` (in feed order, all after the cursor) to their tenants' subscribers. A
    /// subscriber whose buffer is full is let go (`too_slow`).
    pub fn dispatch(&self, events: &[FeedEvent]) {
        let mut inner = self.lock();
        let mut dropped = 0usize;
        for event in events {
            inner.cursor = Some(event.position);
            let Some(frame) = &event.frame else {
                continue;
            };
            let Some(subs) = inner.tenants.get_mut(&event.tenant) else {
                continue;
            };
            subs.retain(|s| match s.live.try_send((event.position, frame.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.closing.close(End::TooSlow);
                    self.count_end(End::TooSlow);
                    dropped += 1;
                    false
                }
                // Its stream ended and is about to unsubscribe.
                Err(mpsc::error::TrySendError::Closed(_)) => true,
            });
            if subs.is_empty() {
                inner.tenants.remove(&event.tenant);
            }
            self.metrics.events_delivered.inc();
        }
        inner.count -= dropped;
        self.metrics.event_subscribers.set(inner.count as i64);
    }

    /// Every subscriber's token, deduplicated, to be checked again.
    pub fn tokens(&self) -> Vec<String> {
        let inner = self.lock();
        let mut tokens: Vec<String> = inner
            .tenants
            .values()
            .flatten()
            .map(|s| s.token.clone())
            .collect();
        tokens.sort_unstable();
        tokens.dedup();
        tokens
    }

    /// Disconnects every subscriber whose token is in `refused` (`credential_revoked`).
    pub fn revoke(&self, refused: &[String]) {
        if refused.is_empty() {
            return;
        }
        self.close_where(|s| refused.contains(&s.token), End::CredentialRevoked);
    }

    /// Disconnects every subscriber and refuses new ones (shutting down).
    pub fn close_all(&self) {
        self.lock().closed = true;
        self.close_where(|_| true, End::ShuttingDown);
    }

    fn close_where(&self, pick: impl Fn(&Subscriber) -> bool, why: End) {
        let mut inner = self.lock();
        let mut closed = 0usize;
        for subs in inner.tenants.values_mut() {
            subs.retain(|s| {
                if pick(s) {
                    s.closing.close(why);
                    self.count_end(why);
                    closed += 1;
                    false
                } else {
                    true
                }
            });
        }
        inner.tenants.retain(|_, subs| !subs.is_empty());
        inner.count -= closed;
        self.metrics.event_subscribers.set(inner.count as i64);
    }

    fn count_end(&self, why: End) {
        self.metrics
            .event_disconnects
            .get_or_create(&ReasonLabels { reason: why.code() })
            .inc();
    }
}

/// One row of `gateway_events_read`: its position, tenant, readiness and frame.
fn feed_event(row: &tokio_postgres::Row) -> (FeedEvent, bool) {
    let position = Position {
        xid: row.get::<_, i64>(0) as u64,
        id: row.get(1),
    };
    let tenant: uuid::Uuid = row.get(2);
    let ready: bool = row.get(3);
    let event_id: Option<String> = row.get(4);
    let kind: Option<String> = row.get(5);
    let data: Option<String> = row.get(6);
    let frame = match (event_id, kind, data) {
        (Some(id), Some(kind), Some(data)) => Some(Bytes::from(format!(
            "id: {id}\nevent: {kind}\ndata: {data}\n\n"
        ))),
        _ => None,
    };
    (
        FeedEvent {
            position,
            tenant: tenant.to_string(),
            frame,
        },
        ready,
    )
}

const READ: &str = "SELECT xid, id, tenant, ready, event_id, kind, data \
                    FROM sealstore.gateway_events_read($1, $2, $3, $4)";

/// Up to a page of events after `after` (of `tenant`, or all), and whether the page ended at
/// one not ready yet.
async fn read_page(
    client: &tokio_postgres::Client,
    after: Position,
    tenant: Option<uuid::Uuid>,
) -> Result<(Vec<FeedEvent>, bool, bool), DbError> {
    let rows = client
        .query_typed(
            READ,
            &[
                (&(after.xid as i64), Type::INT8),
                (&after.id, Type::INT8),
                (&PAGE, Type::INT4),
                (&tenant, Type::UUID),
            ],
        )
        .await
        .map_err(DbError::from_pg)?;
    let full = rows.len() == PAGE as usize;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let (event, ready) = feed_event(row);
        if !ready {
            return Ok((events, true, false));
        }
        events.push(event);
    }
    Ok((events, false, full))
}

/// Sets where the feed begins, the end of the events kept, so that subscriptions can be taken
/// (called once before the gateway listens; the loop retries while the database is down).
pub async fn prime(hub: &Hub, pool: &Pool) -> Result<(), DbError> {
    let client = pool.get().await.map_err(DbError::from_pool)?;
    prime_on(hub, &client).await
}

async fn prime_on(hub: &Hub, client: &tokio_postgres::Client) -> Result<(), DbError> {
    let row = client
        .query_typed_one("SELECT xid, id FROM sealstore.gateway_events_tail()", &[])
        .await
        .map_err(DbError::from_pg)?;
    hub.start_at(Position {
        xid: row.get::<_, i64>(0) as u64,
        id: row.get(1),
    });
    Ok(())
}

/// The listening connection's loop: never ends; a database that is down is retried, and the
/// feed goes on from where it was (events are kept in the table).
pub async fn run(hub: Arc<Hub>, pool: Pool, statement_timeout_ms: u64) {
    let wait_ms = i32::try_from((statement_timeout_ms / 2).clamp(50, 10_000)).unwrap_or(10_000);
    let mut state = Listening {
        seen: (-1, -1),
        pending: false,
        delay_ms: 1,
        purged: None,
    };
    loop {
        if let Err(e) = state.round(&hub, &pool, wait_ms).await {
            tracing::warn!(error = ?e, "change feed: database unavailable");
            state.seen = (-1, -1);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

struct Listening {
    /// The counts of commits with events and of key changes last seen.
    seen: (i64, i64),
    /// The last read stopped at an event whose transaction (or an earlier one) may still run.
    pending: bool,
    delay_ms: i32,
    purged: Option<Instant>,
}

impl Listening {
    async fn round(&mut self, hub: &Hub, pool: &Pool, wait_ms: i32) -> Result<(), DbError> {
        let mut client = pool.get().await.map_err(DbError::from_pool)?;
        if hub.cursor().is_none() {
            prime_on(hub, &client).await?;
        }
        // A pending event is read again soon (backing off to 100 ms), whether or not anything
        // commits meanwhile.
        let timeout = if self.pending { self.delay_ms } else { wait_ms };
        let row = client
            .query_typed_one(
                "SELECT events, credentials FROM sealstore.gateway_events_wait($1, $2, $3)",
                &[
                    (&self.seen.0, Type::INT8),
                    (&self.seen.1, Type::INT8),
                    (&timeout, Type::INT4),
                ],
            )
            .await
            .map_err(DbError::from_pg)?;
        let now: (i64, i64) = (row.get(0), row.get(1));
        if now.1 != self.seen.1 && self.seen.1 >= 0 {
            recheck(hub, &mut client).await?;
        }
        if now.0 != self.seen.0 || self.pending {
            let was_pending = self.pending;
            self.pending = read_all(hub, &client).await?;
            self.delay_ms = if self.pending && was_pending {
                (self.delay_ms * 2).min(100)
            } else {
                1
            };
        }
        self.seen = now;
        if self.purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
            self.purged = Some(Instant::now());
            let row = client
                .query_typed_one("SELECT sealstore.gateway_events_purge()", &[])
                .await
                .map_err(DbError::from_pg)?;
            let purged: i64 = row.get(0);
            if purged > 0 {
                tracing::info!(purged, "change feed: events past their retention purged");
            }
        }
        Ok(())
    }
}

/// Reads and hands out every ready event after the cursor; true if one is pending.
async fn read_all(hub: &Hub, client: &tokio_postgres::Client) -> Result<bool, DbError> {
    loop {
        let after = hub.cursor().unwrap_or_default();
        let (events, pending, full) = read_page(client, after, None).await?;
        hub.dispatch(&events);
        if pending || !full {
            return Ok(pending);
        }
    }
}

/// Checks every subscriber's token again (one call, in a read-only transaction, so that it
/// records no API key use) and disconnects those refused.
async fn recheck(hub: &Hub, client: &mut deadpool_postgres::Object) -> Result<(), DbError> {
    let tokens = hub.tokens();
    if tokens.is_empty() {
        return Ok(());
    }
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(DbError::from_pg)?;
    let row = tx
        .query_typed_one(
            "SELECT sealstore.gateway_credentials_valid($1)",
            &[(&tokens, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(DbError::from_pg)?;
    tx.commit().await.map_err(DbError::from_pg)?;
    let valid: Vec<bool> = row.get(0);
    let refused: Vec<String> = tokens
        .into_iter()
        .zip(valid)
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| t)
        .collect();
    hub.revoke(&refused);
    Ok(())
}

/// What a subscriber's stream task needs.
pub struct Stream {
    pub hub: Arc<Hub>,
    pub pool: Pool,
    pub tenant: String,
    pub subscription: Subscription,
    /// Resume after this position (`Last-Event-ID`).
    pub resume: Option<Position>,
    /// The token's `exp` (Unix seconds); none for an API key.
    pub expires_at: Option<u64>,
    pub heartbeat: Duration,
}

/// The longest `Last-Event-ID` accepted (the database's ids are far shorter).
const MAX_EVENT_ID: usize = 256;

/// The `Last-Event-ID` header: none, or one value of visible ASCII up to 256 bytes (400
/// otherwise, before it costs a call).
pub fn last_event_id(headers: &hyper::HeaderMap) -> Result<Option<String>, Failure> {
    let mut values = headers.get_all("last-event-id").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || Failure::bad_request("Last-Event-ID must be one event id of this feed");
    if values.next().is_some() || value.len() > MAX_EVENT_ID || value.is_empty() {
        return Err(bad());
    }
    let text = value.to_str().map_err(|_| bad())?;
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(text.to_owned()))
}

/// What `route_subscribe_events` answers.
#[derive(serde::Deserialize)]
struct Accepted {
    tenant: String,
    expires_at: Option<u64>,
    resume: Option<Resume>,
    too_old: bool,
}

#[derive(serde::Deserialize)]
struct Resume {
    xid: u64,
    id: i64,
}

/// The response to an accepted subscription: a stream of the tenant's events from now, after
/// the missed ones when resuming; one that ends at once with `resume_too_old` when the events
/// after the client's last one were purged.
pub fn response(state: &AppState, token: String, answer: &str) -> Result<Response<Body>, Failure> {
    let accepted: Accepted = serde_json::from_str(answer).map_err(|e| {
        tracing::error!(error = %e, "unexpected answer from route_subscribe_events");
        Failure::Refused(errors::INTERNAL)
    })?;
    let body = if accepted.too_old {
        ended(End::ResumeTooOld)
    } else {
        let subscription = state
            .events
            .subscribe(&accepted.tenant, &token)
            .map_err(|why| {
                Failure::Refused(match why {
                    Refused::NotReady => errors::EVENTS_NOT_READY,
                    Refused::Full => errors::EVENTS_FULL,
                })
            })?;
        start(Stream {
            hub: state.events.clone(),
            pool: state.pools.events.clone(),
            tenant: accepted.tenant,
            subscription,
            resume: accepted.resume.map(|r| Position {
                xid: r.xid,
                id: r.id,
            }),
            expires_at: accepted.expires_at,
            heartbeat: state.config.events_heartbeat,
        })
    };
    let mut resp = Response::new(http_body_util::BodyExt::boxed(body));
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    // Proxies that buffer responses (nginx) pass this one through as it comes.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// Starts a subscriber's stream task and returns the response body it feeds.
pub fn start(stream: Stream) -> EventBody {
    let (out, rx) = mpsc::channel(OUT_QUEUE);
    let closing = stream.subscription.closing.clone();
    tokio::spawn(serve(stream, out));
    EventBody {
        rx,
        closing,
        ended: false,
    }
}

/// A stream that ends at once with `why` (a resume from before the horizon).
pub fn ended(why: End) -> EventBody {
    let (out, rx) = mpsc::channel(1);
    let _ = out.try_send(why.frame());
    EventBody {
        rx,
        closing: Arc::new(Closing::default()),
        ended: true,
    }
}

async fn serve(mut s: Stream, out: mpsc::Sender<Bytes>) {
    let closing = s.subscription.closing.clone();
    let id = s.subscription.id;
    let why = forward(&mut s, &out).await;
    if let Some(why) = why {
        closing.close(why);
    }
    s.hub.unsubscribe(&s.tenant, id);
    // Dropping `out` ends the body, which then sends the reason as its last event.
}

/// Forwards the missed events, then the live ones, with heartbeats, until the stream must end
/// (`Some(why)`) or the client has gone (`None`).
async fn forward(s: &mut Stream, out: &mpsc::Sender<Bytes>) -> Option<End> {
    let closing = s.subscription.closing.clone();
    if out
        .send(Bytes::from_static(b": subscribed\n\n"))
        .await
        .is_err()
    {
        return None;
    }
    if let Some(after) = s.resume {
        if let Err(why) = backlog(s, after, out).await {
            return why;
        }
    }
    let expiry = s.expires_at.map(|exp| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        tokio::time::Instant::now() + Duration::from_secs(exp.saturating_sub(now))
    });
    let mut heartbeat = tokio::time::interval(s.heartbeat);
    heartbeat.reset();
    loop {
        tokio::select! {
            biased;
            () = closing.notify.notified() => return closing.reason(),
            () = sleep_until(expiry) => return Some(End::TokenExpired),
            frame = s.subscription.live.recv() => match frame {
                // Already sent from the backlog (the resume point was past the hub's place).
                Some((position, _)) if s.resume.is_some_and(|r| position <= r) => {}
                Some((_, frame)) => {
                    tokio::select! {
                        biased;
                        () = closing.notify.notified() => return closing.reason(),
                        () = sleep_until(expiry) => return Some(End::TokenExpired),
                        sent = out.send(frame) => if sent.is_err() { return None },
                    }
                    heartbeat.reset();
                }
                // The hub let it go (its reason is set).
                None => return closing.reason(),
            },
            _ = heartbeat.tick() => {
                if let Err(mpsc::error::TrySendError::Closed(_)) =
                    out.try_send(Bytes::from_static(b": heartbeat\n\n"))
                {
                    return None;
                }
            }
            () = out.closed() => return None,
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends the subscriber's tenant's events after `after` up to where its live events begin.
async fn backlog(
    s: &Stream,
    mut after: Position,
    out: &mpsc::Sender<Bytes>,
) -> Result<(), Option<End>> {
    let tenant = uuid::Uuid::parse_str(&s.tenant).map_err(|_| Some(End::Unavailable))?;
    let start = s.subscription.start;
    while after < start {
        let client = s.pool.get().await.map_err(|_| Some(End::Unavailable))?;
        let (events, _pending, full) = read_page(&client, after, Some(tenant))
            .await
            .map_err(|_| Some(End::Unavailable))?;
        drop(client);
        for event in &events {
            if event.position > start {
                return Ok(());
            }
            after = event.position;
            if let Some(frame) = &event.frame {
                if s.subscription.closing.reason().is_some() {
                    return Err(s.subscription.closing.reason());
                }
                out.send(frame.clone()).await.map_err(|_| None)?;
            }
        }
        if !full {
            return Ok(());
        }
    }
    Ok(())
}

/// The response body of an event stream: the frames its task sends, then the reason it ended
/// as a last event. Once a subscriber has been told to stop (revoked, expired, too slow), it
/// gets no further event, even one already queued.
pub struct EventBody {
    rx: mpsc::Receiver<Bytes>,
    closing: Arc<Closing>,
    ended: bool,
}

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.ended {
            if let Some(why) = self.closing.reason() {
                self.ended = true;
                self.rx.close();
                return Poll::Ready(Some(Ok(Frame::data(why.frame()))));
            }
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(bytes)) if !self.ended || self.closing.reason().is_none() => {
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Some(_)) => Poll::Ready(None),
            Poll::Ready(None) => match self.closing.reason() {
                Some(why) if !self.ended => {
                    self.ended = true;
                    Poll::Ready(Some(Ok(Frame::data(why.frame()))))
                }
                _ => Poll::Ready(None),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;

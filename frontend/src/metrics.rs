//! Prometheus metrics (the `prometheus-client` crate), served at /metrics to admin credentials.
//! Labels are route templates and codes, never paths with ids or anything a client chose.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: &'static str,
}

/// A replica by its place in `SEALSTORE_DB_REPLICA_URLS`, from 1 (never its host).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    pub replica: usize,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub rate_limited: Family<LimitLabels, Counter>,
    pub db_unavailable: Counter,
    pub db_busy: Counter,
    pub audit_dropped: Counter,
    pub pool_size: Gauge,
    pub pool_available: Gauge,
    pub pool_waiting: Gauge,
    pub reads_in_flight: Gauge,
    pub replica_reads: Family<ReplicaLabels, Counter>,
    pub replica_usable: Family<ReplicaLabels, Gauge>,
    pub replica_lag: Family<ReplicaLabels, Gauge>,
    pub event_subscribers: Gauge,
    pub events_delivered: Counter,
    pub event_disconnects: Family<ReasonLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sealstore_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        let rate_limited = Family::<LimitLabels, Counter>::default();
        let db_unavailable = Counter::default();
        let db_busy = Counter::default();
        let audit_dropped = Counter::default();
        let pool_size = Gauge::default();
        let pool_available = Gauge::default();
        let pool_waiting = Gauge::default();
        let reads_in_flight = Gauge::default();
        let replica_reads = Family::<ReplicaLabels, Counter>::default();
        let replica_usable = Family::<ReplicaLabels, Gauge>::default();
        let replica_lag = Family::<ReplicaLabels, Gauge>::default();
        let event_subscribers = Gauge::default();
        let events_delivered = Counter::default();
        let event_disconnects = Family::<ReasonLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route",
            duration.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused credentials, by reason",
            auth_failures.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429",
            rate_limited.clone(),
        );
        registry.register(
            "db_unavailable",
            "Requests answered 503 because the database was unreachable",
            db_unavailable.clone(),
        );
        registry.register(
            "db_busy",
            "Requests answered 503 because no database connection came free in time, or every \
             read connection held its most calls",
            db_busy.clone(),
        );
        registry.register(
            "audit_dropped",
            "Failed-authentication events not audited (backlog full)",
            audit_dropped.clone(),
        );
        registry.register(
            "db_pool_size",
            "Open database connections",
            pool_size.clone(),
        );
        registry.register(
            "db_pool_available",
            "Idle database connections",
            pool_available.clone(),
        );
        registry.register(
            "db_pool_waiting",
            "Requests waiting for a database connection",
            pool_waiting.clone(),
        );
        registry.register(
            "db_reads_in_flight",
            "Read calls sent on the shared read connections and not yet answered",
            reads_in_flight.clone(),
        );
        registry.register(
            "replica_reads",
            "API read calls answered by a hot standby",
            replica_reads.clone(),
        );
        registry.register(
            "replica_usable",
            "1 while a hot standby serves reads (a standby, within the lag bound)",
            replica_usable.clone(),
        );
        registry.register(
            "replica_lag_bytes",
            "Bytes of WAL a hot standby's replay is behind the primary (-1: unknown)",
            replica_lag.clone(),
        );
        registry.register(
            "event_subscribers",
            "Open change-event streams (GET /v1/events)",
            event_subscribers.clone(),
        );
        registry.register(
            "events",
            "Change events read by the listening connection and handed to subscribers",
            events_delivered.clone(),
        );
        registry.register(
            "event_disconnects",
            "Change-event streams ended by the gateway, by reason",
            event_disconnects.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            auth_failures,
            rate_limited,
            db_unavailable,
            db_busy,
            audit_dropped,
            pool_size,
            pool_available,
            pool_waiting,
            reads_in_flight,
            replica_reads,
            replica_usable,
            replica_lag,
            event_subscribers,
            events_delivered,
            event_disconnects,
        }
    }

    /// The text exposition format, with the pool gauges read now.
    pub fn render(&self, pools: &crate::db::Pools) -> String {
        let (w, r) = (pools.write.status(), pools.reads.status());
        self.pool_size.set((w.size + r.size) as i64);
        self.pool_available.set((w.available + r.available) as i64);
        self.pool_waiting.set((w.waiting + r.waiting) as i64);
        self.reads_in_flight.set(pools.reads.in_flight() as i64);
        for (i, r) in pools.replicas.states().iter().enumerate() {
            let labels = ReplicaLabels { replica: i + 1 };
            self.replica_usable
                .get_or_create(&labels)
                .set(i64::from(r.usable));
            self.replica_lag.get_or_create(&labels).set(
                r.lag_bytes
                    .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
            );
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

//! What every request shares: configuration, database pools, the token verifier, limits,
//! metrics, the audit sink, the database's health, and the HTTP envelope's settings.

use std::sync::Arc;

use tower_http::cors::CorsLayer;

use crate::audit::AuditSink;
use crate::auth::Verifier;
use crate::config::Config;
use crate::db::{Health, Pools};
use crate::events::Hub;
use crate::limits::Limits;
use crate::metrics::Metrics;

pub struct AppState {
    pub config: Config,
    pub pools: Pools,
    pub verifier: Verifier,
    pub limits: Arc<Limits>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditSink,
    /// The change feed's subscribers.
    pub events: Arc<Hub>,
    pub health: Arc<Health>,
    /// Host header values accepted (empty: any).
    pub allowed_hosts: Vec<String>,
    pub cors: CorsLayer,
}

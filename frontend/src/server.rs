//! The HTTP server: accept loop, per-request envelope (request id, timeout, security headers,
//! access log) and graceful shutdown that lets in-flight requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::response::{self, Body};
use crate::routes;

/// A client that has not sent its request headers by then is disconnected (slow-loris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AppState {
    pub config: Config,
    pub pool: Pool,
}

/// Serves until `shutdown` resolves, then stops accepting and waits up to the configured
/// timeout for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: log, back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = state.clone();
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(envelope(&state, req, peer).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let timeout = state.config.shutdown_timeout;
    tracing::info!(
        timeout_secs = timeout.as_secs(),
        "shutting down: draining connections"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(timeout) => tracing::warn!("drain timed out; closing the rest"),
    }
}

async fn envelope(
    state: &AppState,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = match tokio::time::timeout(
        state.config.request_timeout,
        routes::handle(state, req, &request_id),
    )
    .await
    {
        Ok(resp) => resp,
        Err(_) => response::unavailable("timeout", "request timed out", &request_id),
    };
    // Only method, path and status: never headers (Authorization) or bodies.
    tracing::info!(
        request_id,
        %method,
        path,
        status = resp.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        peer = %peer.ip(),
        "request"
    );
    response::finish(resp, &request_id)
}

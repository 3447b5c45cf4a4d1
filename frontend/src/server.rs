//! The HTTP server: accept loop (plain or TLS), per-request envelope (request id, Host check,
//! CORS, timeout, security headers, access log, metrics) and graceful shutdown that lets
//! in-flight requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::pipeline::{self, Ctx};
use crate::response::{self, Body};
use crate::router::{self, Resolved, Target};
use crate::state::AppState;

/// A client that has not sent its request headers by then is disconnected (slow-loris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake must finish within this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// CORS for the configured origins only (tower-http). Without origins, no CORS headers at all:
/// browsers then refuse cross-origin calls.
pub fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::HeaderName::from_static(response::REQUEST_ID_HEADER)])
        .max_age(Duration::from_secs(600))
}

/// Serves until `shutdown` resolves, then stops accepting and waits up to the configured
/// timeout for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
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
                let _ = stream.set_nodelay(true);
                let state_for_conn = state.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let state = state_for_conn.clone();
                    async move { Ok::<_, Infallible>(envelope(&state, req, peer).await) }
                });
                let builder = {
                    let mut b = http1::Builder::new();
                    b.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
                    b
                };
                match &tls {
                    None => {
                        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, %peer, "connection ended with an error");
                            }
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, %peer, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, %peer, "connection ended with an error");
                            }
                        });
                    }
                }
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

/// The request's one Host value (the URI's authority for HTTP/1.0 without one). RFC 9112
/// (3.2): a request with two Host lines, an invalid one, or none in HTTP/1.1 is answered 400,
/// whatever the route; a proxy and this server could otherwise each read another host.
fn host(req: &Request<Incoming>) -> Result<Option<&str>, ()> {
    let mut values = req.headers().get_all(header::HOST).iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(()),
        (Some(v), None) => v.to_str().map(Some).map_err(|_| ()),
        (None, _) => match req.uri().authority() {
            Some(a) => Ok(Some(a.as_str())),
            None if req.version() == hyper::Version::HTTP_10 => Ok(None),
            None => Err(()),
        },
    }
}

fn host_allowed(state: &AppState, host: Option<&str>) -> bool {
    state.allowed_hosts.is_empty()
        || host.is_some_and(|h| state.allowed_hosts.contains(&h.to_ascii_lowercase()))
}

async fn envelope(state: &AppState, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let method = req.method().clone();
    let resolved = router::resolve(&method, req.uri().path());
    let route = match &resolved {
        Resolved::Found(spec, _) => spec.path,
        Resolved::MethodNotAllowed(template) => template,
        Resolved::NotFound | Resolved::BadPath => "unmatched",
    };
    let health_check = matches!(
        resolved,
        Resolved::Found(spec, _) if matches!(spec.target, Target::Health | Target::Ready)
    );
    let host = host(&req);
    let resp = if host.is_err() {
        response::error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "exactly one valid Host header is required",
            &request_id,
        )
    } else if !health_check && !host_allowed(state, host.ok().flatten()) {
        response::error(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "this server does not answer for that host",
            &request_id,
        )
    } else {
        // CORS (tower-http) answers preflights itself and adds its headers to the rest; the
        // handler runs inside it, this envelope outside.
        let inner = tower::service_fn(|req: Request<Incoming>| {
            let resolved = resolved.clone();
            let request_id = &request_id;
            async move {
                let ctx = Ctx {
                    state,
                    request_id,
                    peer: peer.ip(),
                };
                let resp = tokio::time::timeout(
                    state.config.request_timeout,
                    pipeline::handle(&ctx, req, resolved),
                )
                .await
                .unwrap_or_else(|_| {
                    response::error(
                        StatusCode::GATEWAY_TIMEOUT,
                        "timeout",
                        "the request took too long",
                        request_id,
                    )
                });
                Ok::<_, Infallible>(resp)
            }
        });
        match state.cors.layer(inner).oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    };
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method: method_label(&method),
            status,
        })
        .inc();
    state
        .metrics
        .duration
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    // Method, route template and status: never the raw path (ids, secret names), headers
    // (Authorization) or bodies.
    tracing::info!(
        request_id,
        %method,
        route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        peer = %peer.ip(),
        "request"
    );
    response::finish(resp, &request_id, state.config.tls.is_some())
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

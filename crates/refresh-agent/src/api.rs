//! The local API: HTTP/1.1 on a unix socket.
//!
//! - `GET /v1/tokens/{profile}`: the profile's valid token as JSON, to the callers its readers allow (by the
//!   socket peer's uid and gid); anyone else gets 403, and the refusal is logged with their uid, gid and pid.
//! - `GET /v1/status`: every profile's state (no tokens).
//! - `GET /healthz`: 200 when every profile has a valid token, 503 (with the ones that do not) otherwise.
//! - `GET /metrics`: the manager's metrics in the Prometheus text format.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use refresh_manager::TokenStore;
use serde_json::json;

use crate::access::Peer;
use crate::agent::{Agent, Health};

/// What every request reads, behind one `Arc` (the router clones its state for each request).
struct Api<S: TokenStore + 'static>(Arc<Shared<S>>);

struct Shared<S: TokenStore + 'static> {
    agent: Agent<S>,
    metrics: Option<PrometheusHandle>,
}

impl<S: TokenStore + 'static> Clone for Api<S> {
    fn clone(&self) -> Self {
        Api(Arc::clone(&self.0))
    }
}

impl<S: TokenStore + 'static> std::ops::Deref for Api<S> {
    type Target = Shared<S>;
    fn deref(&self) -> &Shared<S> {
        &self.0
    }
}

/// The API's routes (for a caller that serves them itself: they need [`Peer`] as connect info).
pub fn router<S: TokenStore + 'static>(
    agent: Agent<S>,
    metrics: Option<PrometheusHandle>,
) -> Router {
    Router::new()
        .route("/v1/tokens/{profile}", get(token::<S>))
        .route("/v1/status", get(status::<S>))
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(prometheus::<S>))
        .with_state(Api(Arc::new(Shared { agent, metrics })))
}

/// Binds the socket at `path` (replacing a stale one), mode 0o666 so that any local user can connect: each request
/// is then checked against its caller's uid and gid. Must run inside a tokio runtime.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Serves the API on `listener` ([`bind`]) until `shutdown` completes.
pub async fn serve<S: TokenStore + 'static>(
    listener: tokio::net::UnixListener,
    agent: Agent<S>,
    metrics: Option<PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(agent, metrics).into_make_service_with_connect_info::<Peer>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn error(status: StatusCode, outcome: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": outcome, "message": message})),
    )
        .into_response()
}

async fn token<S: TokenStore + 'static>(
    State(api): State<Api<S>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let kept = api.agent.kept.load().get(&name).cloned();
    let Some(kept) = kept else {
        return error(StatusCode::NOT_FOUND, "unknown_profile", "no such profile");
    };
    if !kept.readers.allow(&peer, api.agent.agent_uid) {
        tracing::warn!(profile = %name, uid = peer.uid, gid = peer.gid, pid = peer.pid,
            "a caller the profile does not allow asked for its token: refused");
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this profile's readers do not include your uid or gid",
        );
    }
    match api.agent.manager.access_token(&kept.id).await {
        // The body is rendered once per token version, and served from then on as it is.
        Ok(token) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            kept.rendered(&token),
        )
            .into_response(),
        Err(failure) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                failure.outcome(),
                &failure.to_string(),
            );
            if let Some(after) = failure.retry_after()
                && let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

async fn status<S: TokenStore + 'static>(State(api): State<Api<S>>) -> Response {
    axum::Json(json!({"profiles": api.agent.status()})).into_response()
}

async fn healthz<S: TokenStore + 'static>(State(api): State<Api<S>>) -> Response {
    let unhealthy: Vec<String> = api
        .agent
        .status()
        .into_iter()
        .filter(|(_, state)| state.health != Health::Ok)
        .map(|(name, _)| name)
        .collect();
    if unhealthy.is_empty() {
        axum::Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unhealthy", "profiles": unhealthy})),
        )
            .into_response()
    }
}

async fn prometheus<S: TokenStore + 'static>(State(api): State<Api<S>>) -> Response {
    match &api.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no_metrics",
            "this agent records no metrics",
        ),
    }
}

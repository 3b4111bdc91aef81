//! Faults a test can inject into the next answers of an emulator, and the middleware that applies them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{Emulator, LoggedRequest, Shared};

/// One injected fault; each applies to one request, in the order injected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// Answer with this HTTP status and no body (a proxy's 5xx, a 429), with `Retry-After` in seconds if given.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Handle the request (so a rotation is committed), then drop the connection instead of answering.
    DropAfterCommit,
    /// Answer HTTP 200 with this body instead.
    Malformed { content_type: String, body: String },
    /// Handle the request (so a rotation is committed), then answer with the JSON value at `pointer` (RFC 6901,
    /// `/value/corporationId`) replaced by `value`: one field of another type than the vendor documents, as a
    /// vendor whose serializer drifted would send it. An answer that is not JSON, or has nothing at `pointer`,
    /// goes out unchanged.
    Retype {
        pointer: String,
        value: serde_json::Value,
    },
}

impl Fault {
    /// See [`Fault::Retype`].
    pub fn retype(pointer: &str, value: serde_json::Value) -> Fault {
        Fault::Retype {
            pointer: pointer.to_owned(),
            value,
        }
    }

    pub fn server_error(status: u16) -> Fault {
        Fault::Status {
            status,
            retry_after: None,
        }
    }

    pub fn rate_limited(retry_after_seconds: u64) -> Fault {
        Fault::Status {
            status: 429,
            retry_after: Some(retry_after_seconds),
        }
    }

    pub fn html_page() -> Fault {
        Fault::Malformed {
            content_type: "text/html".into(),
            body: "<html><body>502 Bad Gateway</body></html>".into(),
        }
    }
}

/// A span of the sandbox's time during which an emulator answers every request with `status`.
#[derive(Clone, Debug)]
pub(crate) struct Outage {
    pub(crate) emulator: Emulator,
    pub(crate) from: chrono::DateTime<chrono::Utc>,
    pub(crate) until: chrono::DateTime<chrono::Utc>,
    pub(crate) status: u16,
}

impl Outage {
    pub(crate) fn covers(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.from <= now && now < self.until
    }
}

/// Logs every request, then applies the emulator's next injected fault, if any.
pub(crate) async fn intercept(
    State((shared, emulator)): State<(Arc<Shared>, Emulator)>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = answer(&shared, emulator, request, next).await;
    // Every origin server with a clock sends one (RFC 9110 §6.6.1): the vendor's clock, which its expiries follow.
    let date = shared
        .clock
        .now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(date) = header::HeaderValue::from_str(&date) {
        response.headers_mut().insert(header::DATE, date);
    }
    response
}

/// The answer to `request`: the emulator's, or the fault queued for it.
async fn answer(
    shared: &Arc<Shared>,
    emulator: Emulator,
    request: Request,
    next: Next,
) -> Response {
    shared.log(LoggedRequest {
        emulator,
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
    });
    let _in_flight = shared.in_flight(emulator);
    let latency = shared.latency(emulator);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match shared.next_fault(emulator) {
        None => next.run(request).await,
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = status.into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
            }
            response
        }
        Some(Fault::Malformed { content_type, body }) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Some(Fault::DropAfterCommit) => {
            let _committed = next.run(request).await;
            dropped_connection()
        }
        Some(Fault::Retype { pointer, value }) => {
            retype(next.run(request).await, &pointer, value).await
        }
    }
}

/// `response` with the JSON value at `pointer` replaced by `value`.
async fn retype(response: Response, pointer: &str, value: serde_json::Value) -> Response {
    let (mut head, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return dropped_connection();
    };
    let mut answer = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(answer) => answer,
        Err(_) => return Response::from_parts(head, axum::body::Body::from(bytes)),
    };
    if let Some(slot) = answer.pointer_mut(pointer) {
        *slot = value;
    }
    head.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&answer).expect("a JSON value encodes");
    Response::from_parts(head, axum::body::Body::from(body))
}

/// A response whose body fails at once: the server closes the connection mid-answer.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "dropped by the sandbox",
        ))
    });
    let mut response = Response::new(axum::body::Body::from_stream(failing));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, 64.into());
    response
}

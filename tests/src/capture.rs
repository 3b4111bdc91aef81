//! A local stand-in for a vendor host: it records what the generated client sends and serves a chosen answer.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;

use progenitor_client::{Error, ResponseValue};
use refresh_runtime::Operation;
use serde::Serialize;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What went over the wire, in a form that reads well in a snapshot: sorted query and headers, body decoded.
#[derive(Debug, Serialize)]
pub struct CapturedRequest {
    pub method: String,
    pub path: String,
    /// The query string exactly as sent (percent-encoding shows here, decoded pairs below).
    pub raw_query: Option<String>,
    pub query: BTreeMap<String, String>,
    /// Every header but `host`, whose port changes from run to run.
    pub headers: BTreeMap<String, String>,
    pub body: CapturedBody,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapturedBody {
    Empty,
    Json(Value),
    Text(String),
}

impl CapturedRequest {
    /// The body as JSON; panics (failing the test) if it is anything else.
    pub fn json_body(&self) -> &Value {
        match &self.body {
            CapturedBody::Json(value) => value,
            other => panic!("expected a JSON body, the client sent {other:?}"),
        }
    }

    pub fn from_wiremock(request: &wiremock::Request) -> Self {
        let mut headers = BTreeMap::new();
        for (name, value) in request.headers.iter() {
            if name != "host" {
                let value = value
                    .to_str()
                    .expect("header values are ASCII here")
                    .to_owned();
                headers.insert(name.as_str().to_owned(), value);
            }
        }
        let body = if request.body.is_empty() {
            CapturedBody::Empty
        } else if let Ok(json) = serde_json::from_slice(&request.body) {
            CapturedBody::Json(json)
        } else {
            CapturedBody::Text(String::from_utf8_lossy(&request.body).into_owned())
        };
        CapturedRequest {
            method: request.method.to_string(),
            path: request.url.path().to_owned(),
            raw_query: request.url.query().map(str::to_owned),
            query: request
                .url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            headers,
            body,
        }
    }
}

/// A local host that serves `template` on `operation`'s own method and path only: a call of another operation
/// gets wiremock's 404 and fails the test.
pub async fn operation_host(operation: &Operation, template: ResponseTemplate) -> MockServer {
    assert!(
        !operation.path.contains('{'),
        "{}: templated paths need a path_regex matcher here",
        operation.id
    );
    let server = MockServer::start().await;
    Mock::given(method(operation.method))
        .and(path(operation.path))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// Runs `call` against a local host that answers `operation` with HTTP 200 and `answer`, and returns the one
/// request it sent.
pub async fn capture_request<F, Fut, T, E>(
    operation: &Operation,
    answer: &Value,
    call: F,
) -> CapturedRequest
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<ResponseValue<T>, Error<E>>>,
    E: Debug,
{
    let server = operation_host(operation, ResponseTemplate::new(200).set_body_json(answer)).await;
    if let Err(error) = call(server.uri()).await {
        panic!("the call against the local host failed: {error:?}");
    }
    let requests = server
        .received_requests()
        .await
        .expect("request recording is on");
    assert_eq!(requests.len(), 1, "one call sends one request");
    CapturedRequest::from_wiremock(&requests[0])
}

/// What the generated client made of one served response.
pub struct DecodedResponse {
    /// `Ok` for a success type, `ErrorResponse` for a documented error status.
    pub outcome: &'static str,
    /// The decoded value, pretty-printed with `Debug`: it shows the Rust types (e.g. which `oneOf` variant).
    pub debug: String,
    /// The decoded value encoded back to JSON, for the round trip.
    pub reencoded: Value,
}

impl DecodedResponse {
    /// The snapshot text: HTTP status, outcome and the typed value.
    pub fn snapshot(&self, status: u16) -> String {
        format!("HTTP {status} → {}\n{}", self.outcome, self.debug)
    }
}

/// Serves `body` with `status` as `operation`'s answer to `call` and returns what the client decoded. Any other
/// outcome (a transport error, an undecodable payload, a call of another operation) fails the test with the
/// client's own error.
pub async fn decode_response<F, Fut, T, E>(
    operation: &Operation,
    status: u16,
    body: &Value,
    call: F,
) -> DecodedResponse
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<ResponseValue<T>, Error<E>>>,
    T: Debug + Serialize,
    E: Debug + Serialize,
{
    let server = operation_host(operation, ResponseTemplate::new(status).set_body_json(body)).await;
    match call(server.uri()).await {
        Ok(value) => {
            let value = value.into_inner();
            DecodedResponse {
                outcome: "Ok",
                debug: format!("{value:#?}"),
                reencoded: encode(&value),
            }
        }
        Err(Error::ErrorResponse(value)) => {
            let value = value.into_inner();
            DecodedResponse {
                outcome: "ErrorResponse",
                debug: format!("{value:#?}"),
                reencoded: encode(&value),
            }
        }
        Err(other) => panic!("HTTP {status} with a documented sample did not decode: {other:?}"),
    }
}

fn encode<V: Serialize>(value: &V) -> Value {
    serde_json::to_value(value).expect("generated types encode to JSON")
}

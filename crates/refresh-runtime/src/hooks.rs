//! What every generated client's `ClientHooks` impl does, written once.
//!
//! progenitor's requests differ from what the vendors document in two ways, the same for every vendor: it adds an
//! `api-version` header (the spec's `info.version`) that no vendor documents, and it sends a POST without a body
//! with no `Content-Length`. [`prepare`] removes the first and adds `Content-Length: 0` (RFC 9110 §8.6; the
//! vendors' own OkHttp and requests samples send it too), with the content type the spec documents for an empty
//! body (`x-empty-body-content-type`, carried by the [`Operation`]). [`execute`] reads at most
//! [`MAX_RESPONSE_BODY_BYTES`] of the answer, and marks an error answer the operation documents as JSON whose
//! body is not JSON; [`inspect`] turns the mark into an error that keeps the status (progenitor's decode error
//! would not).
//!
//! The generated impl is a few lines that call these functions:
//!
//! ```ignore
//! impl ClientHooks for Client {
//!     async fn pre<E>(&self, request: &mut reqwest::Request, info: &OperationInfo) -> Result<(), Error<E>> {
//!         refresh_runtime::hooks::prepare(request, Operation::find(operations::ALL, info.operation_id));
//!         Ok(())
//!     }
//!     async fn exec(&self, request: reqwest::Request, info: &OperationInfo) -> reqwest::Result<reqwest::Response> {
//!         let operation = Operation::find(operations::ALL, info.operation_id);
//!         refresh_runtime::hooks::execute(&self.client, request, operation).await
//!     }
//!     async fn post<E>(&self, result: &reqwest::Result<reqwest::Response>, _: &OperationInfo) -> Result<(), Error<E>> {
//!         refresh_runtime::hooks::inspect(result).map_err(Error::Custom)
//!     }
//! }
//! ```

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};

use crate::bounded::{MAX_RESPONSE_BODY_BYTES, read_bounded_marking};
use crate::operation::Operation;

/// The header progenitor adds to every request and no vendor documents.
const API_VERSION: &str = "api-version";

/// Makes `request` carry what the vendor documents for `operation`, and nothing it does not.
pub fn prepare(request: &mut reqwest::Request, operation: Option<&Operation>) {
    request.headers_mut().remove(API_VERSION);
    let sends_no_body = request.body().is_none()
        && matches!(
            *request.method(),
            reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
        );
    if sends_no_body {
        let headers = request.headers_mut();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        if let Some(content_type) = operation.and_then(|o| o.empty_body_content_type) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
    }
}

/// Sends `request` with `client` and reads at most [`MAX_RESPONSE_BODY_BYTES`] of the answer. An answer with an
/// error status whose body `operation` documents as JSON, but which is not JSON (a gateway's text or HTML page, or
/// nothing), is marked [`UndecodableErrorAnswer`]: progenitor would fail to decode it and forget its status.
pub async fn execute(
    client: &reqwest::Client,
    request: reqwest::Request,
    operation: Option<&Operation>,
) -> reqwest::Result<reqwest::Response> {
    let response = client.execute(request).await?;
    read_bounded_marking(response, MAX_RESPONSE_BODY_BYTES, |status, body| {
        let decodes_error = status >= 400
            && operation.is_some_and(|op| {
                op.statuses
                    .iter()
                    .any(|documented| documented.status == status && documented.decoded)
            });
        let json = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
        (decodes_error && !json).then_some(UndecodableErrorAnswer { status })
    })
    .await
}

/// progenitor's `post` hook: the error for an answer [`execute`] marked [`UndecodableErrorAnswer`] (as
/// `Error::Custom`, whose text [`UndecodableErrorAnswer::from_message`] reads back), instead of a decode failure
/// without its status.
pub fn inspect(result: &reqwest::Result<reqwest::Response>) -> Result<(), String> {
    match result
        .as_ref()
        .ok()
        .and_then(|response| response.extensions().get::<UndecodableErrorAnswer>())
    {
        Some(answer) => Err(answer.message()),
        None => Ok(()),
    }
}

/// An answer with an error status the operation documents as JSON, whose body is not JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UndecodableErrorAnswer {
    pub status: u16,
}

impl UndecodableErrorAnswer {
    const MESSAGE: &str = "an error answer whose body is not the documented JSON, HTTP ";

    /// The text [`inspect`] gives the generated client.
    pub fn message(self) -> String {
        format!("{}{}", Self::MESSAGE, self.status)
    }

    /// The answer a [`Self::message`] describes; `None` for any other text.
    pub fn from_message(message: &str) -> Option<Self> {
        let status = message.strip_prefix(Self::MESSAGE)?.parse().ok()?;
        Some(UndecodableErrorAnswer { status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENEW: Operation = Operation {
        id: "renew_token",
        method: "POST",
        path: "/renew",
        statuses: &[],
        empty_body_content_type: Some("application/json"),
        tokens: &[],
    };

    fn request(method: reqwest::Method, body: Option<&'static str>) -> reqwest::Request {
        let mut request =
            reqwest::Request::new(method, "http://127.0.0.1:9/renew".parse().unwrap());
        request
            .headers_mut()
            .insert(API_VERSION, HeaderValue::from_static("1.0"));
        if let Some(body) = body {
            *request.body_mut() = Some(reqwest::Body::from(body));
        }
        request
    }

    #[test]
    fn the_api_version_header_goes_from_every_request() {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let mut request = request(method, Some("{}"));
            prepare(&mut request, None);
            assert!(request.headers().get(API_VERSION).is_none());
        }
    }

    #[test]
    fn a_bodiless_post_put_or_patch_says_its_length_is_zero() {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::PATCH,
        ] {
            let mut request = request(method.clone(), None);
            prepare(&mut request, None);
            assert_eq!(request.headers()[CONTENT_LENGTH], "0", "{method}");
            assert!(request.headers().get(CONTENT_TYPE).is_none(), "{method}");
        }
    }

    #[test]
    fn the_documented_empty_body_content_type_is_added() {
        let mut request = request(reqwest::Method::POST, None);
        prepare(&mut request, Some(&RENEW));
        assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(request.headers()[CONTENT_LENGTH], "0");
    }

    #[test]
    fn requests_with_a_body_or_without_one_by_nature_are_left_alone() {
        let mut with_body = request(reqwest::Method::POST, Some("{}"));
        prepare(&mut with_body, Some(&RENEW));
        let mut get = request(reqwest::Method::GET, None);
        prepare(&mut get, Some(&RENEW));
        for request in [with_body, get] {
            assert!(request.headers().get(CONTENT_LENGTH).is_none());
            assert!(request.headers().get(CONTENT_TYPE).is_none());
        }
    }

    /// Serves `answer` once on loopback and returns what `execute` then `inspect` make of it.
    async fn inspected(answer: &'static str) -> Result<(), String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await.unwrap();
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        const REFUSED: Operation = Operation {
            statuses: &[crate::operation::DocumentedStatus {
                status: 403,
                decoded: true,
                description: "the failure envelope",
            }],
            ..RENEW
        };
        let request = reqwest::Request::new(
            reqwest::Method::GET,
            format!("http://{address}/renew").parse().unwrap(),
        );
        let result = execute(&reqwest::Client::new(), request, Some(&REFUSED)).await;
        server.await.unwrap();
        inspect(&result)
    }

    #[tokio::test]
    async fn a_documented_error_status_without_json_keeps_its_status() {
        let text =
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 9\r\nconnection: close\r\n\r\nForbidden";
        let message = inspected(text).await.unwrap_err();
        assert_eq!(
            UndecodableErrorAnswer::from_message(&message),
            Some(UndecodableErrorAnswer { status: 403 })
        );
        let empty = "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert!(inspected(empty).await.is_err());
        // JSON is progenitor's to decode; an undocumented status and a success are not error answers to mark.
        for untouched in [
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            "HTTP/1.1 401 Unauthorized\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope",
            "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope",
        ] {
            assert_eq!(inspected(untouched).await, Ok(()), "{untouched}");
        }
    }

    #[test]
    fn only_the_runtime_s_own_message_reads_back() {
        let answer = UndecodableErrorAnswer { status: 401 };
        assert_eq!(
            UndecodableErrorAnswer::from_message(&answer.message()),
            Some(answer)
        );
        for other in [
            "",
            "HTTP 401",
            "an error answer whose body is not the documented JSON, HTTP x",
        ] {
            assert_eq!(UndecodableErrorAnswer::from_message(other), None, "{other}");
        }
    }
}

//! What every generated client's `ClientHooks` impl does, written once.
//!
//! progenitor's requests differ from what the vendors document in two ways, the same for every vendor: it adds an
//! `api-version` header (the spec's `info.version`) that no vendor documents, and it sends a POST without a body
//! with no `Content-Length`. [`prepare`] removes the first and adds `Content-Length: 0` (RFC 9110 §8.6; the
//! vendors' own OkHttp and requests samples send it too), with the content type the spec documents for an empty
//! body (`x-empty-body-content-type`, carried by the [`Operation`]). [`execute`] reads at most
//! [`MAX_RESPONSE_BODY_BYTES`] of the answer.
//!
//! The generated impl is a few lines that call these two functions:
//!
//! ```ignore
//! impl ClientHooks for Client {
//!     async fn pre<E>(&self, request: &mut reqwest::Request, info: &OperationInfo) -> Result<(), Error<E>> {
//!         refresh_runtime::hooks::prepare(request, Operation::find(operations::ALL, info.operation_id));
//!         Ok(())
//!     }
//!     async fn exec(&self, request: reqwest::Request, _: &OperationInfo) -> reqwest::Result<reqwest::Response> {
//!         refresh_runtime::hooks::execute(&self.client, request).await
//!     }
//! }
//! ```

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};

use crate::bounded::{MAX_RESPONSE_BODY_BYTES, read_bounded};
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

/// Sends `request` with `client` and reads at most [`MAX_RESPONSE_BODY_BYTES`] of the answer.
pub async fn execute(
    client: &reqwest::Client,
    request: reqwest::Request,
) -> reqwest::Result<reqwest::Response> {
    let response = client.execute(request).await?;
    read_bounded(response, MAX_RESPONSE_BODY_BYTES).await
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
}

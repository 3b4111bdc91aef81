//! What xtask appends to every generated client: the spec's servers as constants, and the `ClientHooks`
//! implementation.
//!
//! progenitor's requests differ from what the vendors document in two ways, the same for every vendor:
//! it adds an `api-version` header (the spec's `info.version`) that no vendor documents, and it sends a POST
//! without a body with no `Content-Length`. The hook removes the first and adds `Content-Length: 0` (RFC 9110
//! §8.6; the vendors' own OkHttp/requests samples send it too). What differs per vendor, the content type
//! documented for an empty body, is a wire fact and therefore comes from the spec
//! (`x-empty-body-content-type` on the operation). The logic is written once, here; each crate gets the
//! table for its own spec.
//!
//! The hooks also bound how much of a response body is read (`MAX_RESPONSE_BODY_BYTES`): progenitor reads whole
//! bodies into memory, and a token answer is a few hundred bytes, so a larger body is a broken or hostile
//! server, not a token.

use std::fmt::Write;

use super::lint::EMPTY_BODY_CONTENT_TYPE;

/// Rust source for the hooks of the client generated from `spec`.
pub fn source(spec: &openapiv3::OpenAPI) -> String {
    let mut table = String::new();
    for (_, _, operation) in spec.operations() {
        let content_type = operation
            .extensions
            .get(EMPTY_BODY_CONTENT_TYPE)
            .and_then(|v| v.as_str());
        if let (Some(id), Some(content_type)) = (&operation.operation_id, content_type) {
            writeln!(table, "    ({id:?}, {content_type:?}),").expect("writing to a String");
        }
    }
    let mut decoded = String::new();
    for (_, _, operation) in spec.operations() {
        let statuses: Vec<String> = operation
            .responses
            .responses
            .iter()
            .filter_map(|(status, response)| {
                let has_body =
                    resolve_response(spec, response).is_some_and(|r| !r.content.is_empty());
                match status {
                    openapiv3::StatusCode::Code(code) if has_body => Some(code.to_string()),
                    _ => None,
                }
            })
            .collect();
        if let Some(id) = &operation.operation_id {
            writeln!(decoded, "    ({id:?}, &[{}]),", statuses.join(", "))
                .expect("writing to a String");
        }
    }
    let mut servers = String::new();
    for server in &spec.servers {
        let description = server.description.as_deref().unwrap_or("");
        writeln!(servers, "    ({:?}, {description:?}),", server.url).expect("writing to a String");
    }
    let default_base_url = spec.servers.first().map_or("", |s| s.url.as_str());
    format!(
        r#"
/// The vendor's hosts as the spec's `servers` list them: `(base URL, description)`.
pub const SERVERS: &[(&str, &str)] = &[
{servers}];

/// The base URL to use when none is configured: the spec's first server.
pub const DEFAULT_BASE_URL: &str = {default_base_url:?};

/// The HTTP statuses whose answers each operation decodes into a type, as the spec's responses list them.
const DECODED_STATUSES: &[(&str, &[u16])] = &[
{decoded}];

/// The HTTP statuses whose answers `operation_id` decodes into a type. progenitor's
/// [`Error::InvalidResponsePayload`] does not say which status the undecodable answer came with; where this
/// lists one status, that is the one.
pub fn decoded_statuses(operation_id: &str) -> &'static [u16] {{
    DECODED_STATUSES.iter().find(|(id, _)| *id == operation_id).map_or(&[], |(_, statuses)| statuses)
}}

/// A token or secret as the wire carries it (`format: password` in the spec). `Debug` and `Display` print
/// `[redacted]`, so that printing a request or an answer never shows one; serde reads and writes the value
/// itself. Read it with [`Secret::expose_secret`].
#[derive(Clone, Default, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {{
    pub fn new(value: impl Into<String>) -> Self {{
        Secret(value.into())
    }}

    /// The value itself. Do not log it.
    pub fn expose_secret(&self) -> &str {{
        &self.0
    }}

    /// The value itself, taking the `Secret` apart. Do not log it.
    pub fn into_exposed(self) -> String {{
        self.0
    }}
}}

impl From<String> for Secret {{
    fn from(value: String) -> Self {{
        Secret(value)
    }}
}}

impl From<&str> for Secret {{
    fn from(value: &str) -> Self {{
        Secret(value.to_owned())
    }}
}}

impl std::fmt::Debug for Secret {{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{
        f.write_str("Secret([redacted])")
    }}
}}

impl std::fmt::Display for Secret {{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{
        f.write_str("[redacted]")
    }}
}}

/// The most bytes of a response body a call reads; token answers are a few hundred bytes. A call whose answer is
/// larger fails with [`Error::ResponseBodyError`], whose source is a [`std::io::Error`] of kind
/// [`std::io::ErrorKind::FileTooLarge`].
pub const MAX_RESPONSE_BODY_BYTES: usize = 1024 * 1024;

/// Makes every request carry what the vendor documents, and nothing it does not (see ARCHITECTURE.md, "Wire
/// fidelity"), and bounds the response body. This impl for `Client` takes precedence over progenitor's empty
/// one for `&Client`.
impl ClientHooks for Client {{
    async fn pre<E>(&self, request: &mut reqwest::Request, info: &OperationInfo) -> Result<(), Error<E>> {{
        request.headers_mut().remove("api-version");
        let sends_no_body = request.body().is_none()
            && matches!(*request.method(), reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH);
        if sends_no_body {{
            let headers = request.headers_mut();
            headers.insert(reqwest::header::CONTENT_LENGTH, reqwest::header::HeaderValue::from_static("0"));
            if let Some((_, content_type)) = EMPTY_BODY_CONTENT_TYPES.iter().find(|(id, _)| *id == info.operation_id) {{
                headers.insert(reqwest::header::CONTENT_TYPE, reqwest::header::HeaderValue::from_static(content_type));
            }}
        }}
        Ok(())
    }}

    async fn exec(&self, request: reqwest::Request, _info: &OperationInfo) -> reqwest::Result<reqwest::Response> {{
        let response = self.client.execute(request).await?;
        read_bounded(response, MAX_RESPONSE_BODY_BYTES).await
    }}
}}

/// Operations whose empty body the vendor documents with a content type (`{EMPTY_BODY_CONTENT_TYPE}`).
const EMPTY_BODY_CONTENT_TYPES: &[(&str, &str)] = &[
{table}];

/// Reads at most `limit` bytes of `response`'s body and returns a response with the same head and that body, or
/// with a body that fails to read when the server sends (or announces) more.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> reqwest::Result<reqwest::Response> {{
    let mut head = http::Response::builder().status(response.status()).version(response.version());
    if let Some(headers) = head.headers_mut() {{
        *headers = response.headers().clone();
    }}
    let mut too_large = response.content_length().is_some_and(|length| length > limit as u64);
    let mut body = Vec::new();
    while !too_large && let Some(chunk) = response.chunk().await? {{
        too_large = body.len() + chunk.len() > limit;
        body.extend_from_slice(&chunk[..chunk.len().min(limit.saturating_sub(body.len()))]);
    }}
    let body = if too_large {{
        reqwest::Body::wrap_stream(BodyTooLarge {{ limit, reported: false }})
    }} else {{
        reqwest::Body::from(body)
    }};
    // The head comes from a valid response, so building it again cannot fail.
    let rebuilt = head.body(body).expect("status, version and headers of a received response are valid");
    Ok(reqwest::Response::from(rebuilt))
}}

/// A body that fails to read once, with [`std::io::ErrorKind::FileTooLarge`].
struct BodyTooLarge {{
    limit: usize,
    reported: bool,
}}

impl futures_core::Stream for BodyTooLarge {{
    type Item = Result<Vec<u8>, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {{
        if self.reported {{
            return std::task::Poll::Ready(None);
        }}
        self.reported = true;
        let message = format!("the response body exceeds {{}} bytes", self.limit);
        std::task::Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, message))))
    }}
}}
"#
    )
}

/// A response, following a `$ref` into `components.responses`.
fn resolve_response<'a>(
    spec: &'a openapiv3::OpenAPI,
    response: &'a openapiv3::ReferenceOr<openapiv3::Response>,
) -> Option<&'a openapiv3::Response> {
    match response {
        openapiv3::ReferenceOr::Item(response) => Some(response),
        openapiv3::ReferenceOr::Reference { reference } => {
            let name = reference.strip_prefix("#/components/responses/")?;
            spec.components.as_ref()?.responses.get(name)?.as_item()
        }
    }
}

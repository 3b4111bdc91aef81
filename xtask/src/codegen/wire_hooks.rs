//! The `ClientHooks` implementation appended to every generated client.
//!
//! progenitor's requests differ from what the vendors document in two ways, the same for every vendor:
//! it adds an `api-version` header (the spec's `info.version`) that no vendor documents, and it sends a POST
//! without a body with no `Content-Length`. The hook removes the first and adds `Content-Length: 0` (RFC 9110
//! §8.6; the vendors' own OkHttp/requests samples send it too). What differs per vendor, the content type
//! documented for an empty body, is a wire fact and therefore comes from the spec
//! (`x-empty-body-content-type` on the operation). The logic is written once, here; each crate gets the
//! table for its own spec.

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
    format!(
        r#"
/// Makes every request carry what the vendor documents, and nothing it does not (see ARCHITECTURE.md, "Wire
/// fidelity"). This impl for `Client` takes precedence over progenitor's empty one for `&Client`.
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
}}

/// Operations whose empty body the vendor documents with a content type (`{EMPTY_BODY_CONTENT_TYPE}`).
const EMPTY_BODY_CONTENT_TYPES: &[(&str, &str)] = &[
{table}];
"#
    )
}

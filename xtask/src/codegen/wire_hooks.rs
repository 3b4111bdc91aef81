//! What xtask appends to every generated client: the spec's tables (servers, operations, error codes) and the
//! `ClientHooks` impl that delegates to `refresh-runtime`.
//!
//! Everything that runs is compiled code in `crates/refresh-runtime` (the `Secret` type, the hooks, the bounded
//! read); here are only data taken from the spec and a ten-line impl that hands each request to the runtime with
//! its operation. See ARCHITECTURE.md, "Wire fidelity".

use std::fmt::Write;

use super::error_codes::CodeField;
use super::lint::EMPTY_BODY_CONTENT_TYPE;
use super::token_roles::TokenField;

/// The runtime crate the generated code calls.
const RUNTIME: &str = "refresh_runtime";

/// What the spec says about its answers beyond progenitor's types.
pub struct Answers<'a> {
    /// The fields that carry error codes.
    pub error_fields: &'a [CodeField],
    /// Per operation id, the fields that carry tokens and expiry.
    pub token_fields: &'a [(String, Vec<TokenField>)],
}

/// Rust source appended to the client generated from `spec`, whose answers are described by `answers`.
pub fn source(spec: &openapiv3::OpenAPI, answers: &Answers<'_>) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "\n/// Tokens and secrets (`format: password` in the spec): `Debug` and `Display` print `[redacted]`.\n\
         pub use {RUNTIME}::Secret;\n\
         /// The most bytes of an answer the client reads; a larger one fails with [`Error::ResponseBodyError`].\n\
         pub use {RUNTIME}::MAX_RESPONSE_BODY_BYTES;\n"
    )
    .expect("writing to a String");
    servers(spec, &mut out);
    operations(spec, answers.token_fields, &mut out);
    if !answers.error_fields.is_empty() {
        error_codes(answers.error_fields, &mut out);
    }
    write!(
        out,
        r#"
/// Makes every request carry what the vendor documents, and nothing it does not, and bounds the answer
/// (`{RUNTIME}::hooks`). This impl for `Client` takes precedence over progenitor's empty one for `&Client`.
impl ClientHooks for Client {{
    async fn pre<E>(&self, request: &mut reqwest::Request, info: &OperationInfo) -> Result<(), Error<E>> {{
        let operation = {RUNTIME}::Operation::find(operations::ALL, info.operation_id);
        {RUNTIME}::hooks::prepare(request, operation);
        Ok(())
    }}

    async fn exec(&self, request: reqwest::Request, info: &OperationInfo) -> reqwest::Result<reqwest::Response> {{
        let operation = {RUNTIME}::Operation::find(operations::ALL, info.operation_id);
        {RUNTIME}::hooks::execute(&self.client, request, operation).await
    }}

    async fn post<E>(&self, result: &reqwest::Result<reqwest::Response>, _info: &OperationInfo) -> Result<(), Error<E>> {{
        {RUNTIME}::hooks::inspect(result).map_err(Error::Custom)
    }}
}}
"#
    )
    .expect("writing to a String");
    out
}

fn servers(spec: &openapiv3::OpenAPI, out: &mut String) {
    let mut list = String::new();
    for server in &spec.servers {
        let description = server.description.as_deref().unwrap_or("");
        writeln!(list, "    ({:?}, {description:?}),", server.url).expect("writing to a String");
    }
    let default_base_url = spec.servers.first().map_or("", |s| s.url.as_str());
    write!(
        out,
        "/// The vendor's hosts as the spec's `servers` list them: `(base URL, description)`.\n\
         pub const SERVERS: &[(&str, &str)] = &[\n{list}];\n\n\
         /// The base URL to use when none is configured: the spec's first server.\n\
         pub const DEFAULT_BASE_URL: &str = {default_base_url:?};\n"
    )
    .expect("writing to a String");
}

/// `pub mod operations`: one constant per operation, named after its `operationId`, and `ALL`.
fn operations(
    spec: &openapiv3::OpenAPI,
    token_fields: &[(String, Vec<TokenField>)],
    out: &mut String,
) {
    let mut constants = String::new();
    let mut all = Vec::new();
    for (path, method, operation) in spec.operations() {
        let Some(id) = &operation.operation_id else {
            continue; // the lint requires one
        };
        let constant = id.to_ascii_uppercase();
        let method = method.to_ascii_uppercase();
        let mut statuses = String::new();
        for (status, response) in &operation.responses.responses {
            let openapiv3::StatusCode::Code(code) = status else {
                continue;
            };
            let response = resolve_response(spec, response);
            let decoded = response.is_some_and(|r| !r.content.is_empty());
            let description = response.map_or("", |r| r.description.as_str()).trim();
            writeln!(
                statuses,
                "            {RUNTIME}::DocumentedStatus {{ status: {code}, decoded: {decoded}, description: {description:?} }},"
            )
            .expect("writing to a String");
        }
        let empty_body = operation
            .extensions
            .get(EMPTY_BODY_CONTENT_TYPE)
            .and_then(|v| v.as_str())
            .map_or("None".to_owned(), |t| format!("Some({t:?})"));
        let mut tokens = String::new();
        for field in token_fields
            .iter()
            .filter(|(op, _)| op == id)
            .flat_map(|(_, fields)| fields)
        {
            writeln!(
                tokens,
                "            {RUNTIME}::TokenField {{ role: {RUNTIME}::TokenRole::{}, path: {:?} }},",
                field.variant, field.path
            )
            .expect("writing to a String");
        }
        let summary = operation
            .summary
            .as_deref()
            .map(|s| format!(": {}", s.lines().next().unwrap_or("").trim()))
            .unwrap_or_default();
        write!(
            constants,
            "    /// `{method} {path}`{summary}\n    \
             pub const {constant}: {RUNTIME}::Operation = {RUNTIME}::Operation {{\n        \
             id: {id:?},\n        method: {method:?},\n        path: {path:?},\n        \
             statuses: &[\n{statuses}        ],\n        empty_body_content_type: {empty_body},\n        \
             tokens: &[\n{tokens}        ],\n    }};\n\n"
        )
        .expect("writing to a String");
        all.push(constant);
    }
    write!(
        out,
        "\n/// The spec's operations, one constant each (the `operationId` in upper case): id, method, path, documented\n\
         /// statuses. Name an operation by its constant, never by a string.\n\
         pub mod operations {{\n{constants}    \
         /// Every operation of the spec, in its order.\n    \
         pub const ALL: &[{RUNTIME}::Operation] = &[{}];\n}}\n",
        all.join(", ")
    )
    .expect("writing to a String");
}

/// `pub mod error_codes`: a module per field that carries codes, with a constant per code, and `ALL`.
fn error_codes(fields: &[CodeField], out: &mut String) {
    let mut modules = String::new();
    let mut all = Vec::new();
    for field in fields {
        let module = field.module_name();
        let path = &field.path;
        let mut constants = String::new();
        for code in &field.codes {
            write!(
                constants,
                "        /// `{}`: {} ({})\n        pub const {}: {RUNTIME}::ErrorCode = {RUNTIME}::ErrorCode {{ \
                 field: {path:?}, code: {:?}, name: {:?}, meaning: {:?}, source: {:?} }};\n",
                code.code, code.meaning, code.source, code.name, code.code, code.name, code.meaning, code.source
            )
            .expect("writing to a String");
        }
        let names: Vec<&str> = field.codes.iter().map(|c| c.name.as_str()).collect();
        let success = field
            .success
            .as_deref()
            .map_or("None".to_owned(), |s| format!("Some({s:?})"));
        write!(
            modules,
            "    /// The codes of `{path}`.\n    pub mod {module} {{\n        \
             /// The field, its success value and every code documented for it.\n        \
             pub const FIELD: {RUNTIME}::CodeField = {RUNTIME}::CodeField {{ path: {path:?}, success: {success}, codes: &[{}] }};\n\
             {constants}    }}\n\n",
            names.join(", ")
        )
        .expect("writing to a String");
        all.push(format!("{module}::FIELD"));
    }
    write!(
        out,
        "\n/// The error codes the vendor documents, per field of its answers (`x-error-codes` in the spec). What each\n\
         /// means for a caller is `refresh-facade`'s reading, not the vendor's.\n\
         pub mod error_codes {{\n{modules}    \
         /// Every field that carries codes.\n    \
         pub const ALL: &[{RUNTIME}::CodeField] = &[{}];\n}}\n",
        all.join(", ")
    )
    .expect("writing to a String");
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

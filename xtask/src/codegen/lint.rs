//! Project rules for specs, checked before progenitor sees them.
//!
//! Each rule keeps progenitor 0.15 from silently generating the wrong client (or from panicking without saying
//! where): the problems name the place in the spec, so the author can fix it.

use serde_yaml::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Operation extension: the content type a vendor documents for an operation that has no body.
pub const EMPTY_BODY_CONTENT_TYPE: &str = "x-empty-body-content-type";

/// Every problem found in the spec; empty when it follows all the rules.
pub fn check(spec: &Value) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    match spec.get("openapi").and_then(Value::as_str) {
        Some(version) if version.starts_with("3.0.") => {}
        other => problems.push(format!(
            "`openapi` must be 3.0.x (progenitor reads OpenAPI 3.0), found {other:?}"
        )),
    }
    if spec
        .get("servers")
        .and_then(Value::as_sequence)
        .is_none_or(|s| s.is_empty())
    {
        problems.push(
            "`servers` must name at least the vendor's real host (it becomes the default base URL)"
                .into(),
        );
    }
    let paths = spec.get("paths").and_then(Value::as_mapping);
    for (path, item) in paths.into_iter().flatten() {
        let path = path.as_str().unwrap_or("?");
        if item.get("$ref").is_some() {
            problems.push(format!("paths.{path}: path items must be written out, not $ref'd (progenitor cannot follow them)"));
            continue;
        }
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                check_operation(
                    &format!("paths.{path}.{method}"),
                    method,
                    operation,
                    &mut problems,
                );
            }
        }
    }
    let shared_parameters = spec
        .get("components")
        .and_then(|c| c.get("parameters"))
        .and_then(Value::as_mapping);
    for (name, parameter) in shared_parameters.into_iter().flatten() {
        check_parameter(
            &format!("components.parameters.{}", yaml_key(name)),
            parameter,
            &mut problems,
        );
    }
    check_schemas(spec, "", &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn check_operation(at: &str, method: &str, operation: &Value, problems: &mut Vec<String>) {
    if operation
        .get("operationId")
        .and_then(Value::as_str)
        .is_none()
    {
        problems.push(format!(
            "{at} has no operationId (it names the client method)"
        ));
    }
    for parameter in operation
        .get("parameters")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        check_parameter(at, parameter, problems);
    }
    let body = operation.get("requestBody");
    if let Some(body) = body {
        let content = body.get("content").and_then(Value::as_mapping);
        match content.map(|c| c.len()) {
            Some(1) => {}
            count => problems.push(format!(
                "{at}.requestBody must have exactly one media type (progenitor generates one), found {}; \
                 document other formats in the description or an x- extension",
                count.unwrap_or(0)
            )),
        }
        for (media, media_type) in content.into_iter().flatten() {
            require_ref(
                &format!("{at}.requestBody.{}", media.as_str().unwrap_or("?")),
                media_type,
                problems,
            );
        }
    }
    if let Some(content_type) = operation.get(EMPTY_BODY_CONTENT_TYPE)
        && (body.is_some() || content_type.as_str().is_none() || method == "get")
    {
        problems.push(format!(
            "{at}.{EMPTY_BODY_CONTENT_TYPE} must be a string, on a POST, PUT or PATCH that has no requestBody"
        ));
    }
    match operation.get("responses").and_then(Value::as_mapping) {
        Some(responses) if !responses.is_empty() => {
            for (status, response) in responses {
                let at = format!("{at}.responses.{}", yaml_key(status));
                let content = response.get("content").and_then(Value::as_mapping);
                if content.is_some_and(|c| c.len() > 1) {
                    problems.push(format!(
                        "{at} must have at most one media type (progenitor decodes one)"
                    ));
                }
                for (media, media_type) in content.into_iter().flatten() {
                    require_ref(
                        &format!("{at}.{}", media.as_str().unwrap_or("?")),
                        media_type,
                        problems,
                    );
                }
            }
        }
        _ => problems.push(format!("{at} has no responses")),
    }
}

/// Rules for one parameter, inline or in `components.parameters`.
fn check_parameter(at: &str, parameter: &Value, problems: &mut Vec<String>) {
    if parameter.get("in").and_then(Value::as_str) == Some("cookie") {
        problems.push(format!(
            "{at}: cookie parameters are not supported by progenitor"
        ));
    }
    // progenitor sends parameter values through `to_string()`, which a `Secret` redacts.
    let format = parameter
        .get("schema")
        .and_then(|s| s.get("format"))
        .and_then(Value::as_str);
    if format == Some(super::generate::SECRET_FORMAT) {
        let name = parameter.get("name").and_then(Value::as_str).unwrap_or("?");
        problems.push(format!(
            "{at}: parameter {name:?} has `format: password`; only body and answer fields may (the \
             generated Secret redacts its Display, which progenitor uses to send parameters)"
        ));
    }
}

/// Inline response and body schemas get names made up from the operation and can collide between operations
/// (progenitor issue #928): every one must be a `$ref` to a named schema in `components`.
fn require_ref(at: &str, media_type: &Value, problems: &mut Vec<String>) {
    let is_ref = media_type
        .get("schema")
        .and_then(|s| s.get("$ref"))
        .is_some();
    if !is_ref {
        problems.push(format!(
            "{at}.schema must be a $ref to a named schema in components.schemas"
        ));
    }
}

/// `additionalProperties: false` makes progenitor's types reject any field a vendor adds later.
fn check_schemas(value: &Value, at: &str, problems: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let key = yaml_key(key);
                if key == "additionalProperties" && child.as_bool() == Some(false) {
                    problems.push(format!(
                        "{at}: `additionalProperties: false` is not allowed (vendors add fields; decoding must not fail)"
                    ));
                }
                check_schemas(
                    child,
                    &format!(
                        "{}{key}",
                        if at.is_empty() {
                            String::new()
                        } else {
                            format!("{at}.")
                        }
                    ),
                    problems,
                );
            }
        }
        Value::Sequence(items) => {
            for (index, child) in items.iter().enumerate() {
                check_schemas(child, &format!("{at}[{index}]"), problems);
            }
        }
        _ => {}
    }
}

fn yaml_key(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "?".to_owned(),
    }
}

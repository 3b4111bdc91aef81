//! The assertions every vendor's wire tests make.

use std::fmt::Debug;
use std::future::Future;

use progenitor_client::{Error, ResponseValue};
use refresh_runtime::Operation;
use serde::Serialize;

use crate::capture::{CapturedBody, CapturedRequest, decode_response};
use crate::documented::DocumentedRequest;
use crate::json::assert_round_trip;
use crate::snapshot_settings;
use crate::spec::{Example, Spec};

/// Asserts that `captured` went to the operation's route with exactly the example's body (or no body), and
/// snapshots it as `<vendor>__<operation>__request__<example>`.
pub fn assert_request(
    spec: &Spec,
    operation: &Operation,
    example: Option<&Example>,
    captured: &CapturedRequest,
) {
    let operation_id = operation.id;
    let (method, path) = spec.route(operation);
    assert_eq!(
        (operation.method, operation.path),
        (method.as_str(), path.as_str()),
        "the generated operation constant says what the spec says"
    );
    assert_eq!(
        (captured.method.as_str(), captured.path.as_str()),
        (method.as_str(), path.as_str())
    );
    match example {
        Some(example) => assert_eq!(
            captured.json_body(),
            &example.value,
            "{} {operation_id}: the body sent differs from the sample '{}'",
            spec.vendor,
            example.name
        ),
        None => assert_eq!(
            captured.body,
            CapturedBody::Empty,
            "{} {operation_id} has no body",
            spec.vendor
        ),
    }
    let (name, summary) = example.map_or(("parameters", "parameter examples of the spec"), |e| {
        (e.name.as_str(), e.summary.as_str())
    });
    snapshot_settings(format!("{} {operation_id} request: {summary}", spec.vendor)).bind(|| {
        insta::assert_yaml_snapshot!(
            format!("{}__{operation_id}__request__{name}", spec.vendor),
            captured
        );
    });
}

/// Asserts that `captured` is the request the vendor's page documents (`x-documented-request`): same method and
/// path, every documented query parameter and header with the documented value, and no query parameter the
/// page does not show. `query_aliases` maps a documented parameter name to the one the spec chose, where the
/// vendor documents two names for one parameter.
pub fn assert_documented_request(
    spec: &Spec,
    operation: &Operation,
    captured: &CapturedRequest,
    query_aliases: &[(&str, &str)],
) {
    let operation_id = operation.id;
    let text = spec
        .extension(operation, "x-documented-request")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{} {operation_id} has no x-documented-request", spec.vendor));
    let documented = DocumentedRequest::parse(&text);
    assert_eq!(captured.method, documented.method);
    assert_eq!(captured.path, documented.path);
    let documented_query: std::collections::BTreeMap<String, String> = documented
        .query
        .iter()
        .map(|(name, value)| {
            let name = query_aliases
                .iter()
                .find(|(from, _)| from == name)
                .map_or(name.as_str(), |(_, to)| to);
            (name.to_owned(), value.clone())
        })
        .collect();
    assert_eq!(
        captured.query, documented_query,
        "{} {operation_id}: query differs from the documented request",
        spec.vendor
    );
    for (name, value) in &documented.headers {
        assert_eq!(
            captured.headers.get(name),
            Some(value),
            "{} {operation_id}: header {name} differs from the documented request",
            spec.vendor
        );
    }
}

/// For every response example of the operation: serve it with its status, snapshot what `call` decodes as
/// `<vendor>__<operation>__response__<status>__<example>`, and assert the decoded value encodes back to the
/// sample (nothing dropped, nothing changed).
pub async fn check_response_examples<F, Fut, T, E>(spec: &Spec, operation: &Operation, call: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<ResponseValue<T>, Error<E>>>,
    T: Debug + Serialize,
    E: Debug + Serialize,
{
    let operation_id = operation.id;
    let examples = spec.response_examples(operation);
    assert!(
        !examples.is_empty(),
        "{} {operation_id} has no response examples",
        spec.vendor
    );
    for (status, example) in examples {
        let decoded = decode_response(operation, status, &example.value, &call).await;
        let name = format!(
            "{}__{operation_id}__response__{status}__{}",
            spec.vendor, example.name
        );
        snapshot_settings(format!(
            "{} {operation_id} HTTP {status}: {}",
            spec.vendor, example.summary
        ))
        .bind(|| insta::assert_snapshot!(name.clone(), decoded.snapshot(status)));
        assert_round_trip(&name, &example.value, &decoded.reencoded);
    }
}

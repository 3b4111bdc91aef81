//! The checks every emulator answer passes against the spec.

use std::collections::BTreeSet;

use refresh_kit_tests::{Spec, assert_round_trip};
use refresh_runtime::Operation;
use refresh_sandbox::{Emulator, Sandbox, SandboxOptions};
use serde_json::Value;

use crate::case::Answer;

/// A sandbox with only `emulator`, its base URL and its spec.
pub async fn start(emulator: Emulator) -> (Sandbox, String, Spec) {
    let sandbox = Sandbox::start(SandboxOptions::only(emulator))
        .await
        .unwrap();
    let base = sandbox.base_url(emulator).unwrap();
    (sandbox, base, Spec::load(emulator.as_str()))
}

/// Every answer: a status the spec lists for its operation; a body exactly where the spec gives one, which
/// `decode` (the operation's generated type, decoded and encoded back) keeps whole, in the shape of one of the
/// spec's examples of that schema. `operations` are the generated `operations::ALL`.
pub fn check(
    spec: &Spec,
    operations: &[Operation],
    answers: &[Answer],
    decode: impl Fn(&Operation, &Value) -> Result<Value, String>,
) {
    for answer in answers {
        let context = format!(
            "{} {} ({}), HTTP {}",
            spec.vendor, answer.operation.id, answer.label, answer.status
        );
        assert!(
            spec.statuses(answer.operation).contains(&answer.status),
            "{context}: a status the spec does not list"
        );
        let schema = spec.response_schema(answer.operation, answer.status);
        match (&answer.body, schema) {
            (None, None) => {}
            (Some(body), Some(schema)) => {
                let reencoded = decode(answer.operation, body)
                    .unwrap_or_else(|e| panic!("{context}: {e}\n{body}"));
                assert_round_trip(&context, body, &reencoded);
                let shapes: Vec<BTreeSet<String>> = spec
                    .examples_of_schema(operations, &schema)
                    .iter()
                    .map(|e| shape(&e.value))
                    .collect();
                assert!(
                    shapes.contains(&shape(body)),
                    "{context}: no example of {schema} has the shape of {body}"
                );
            }
            (body, schema) => {
                panic!("{context}: body {body:?} where the spec's schema is {schema:?}")
            }
        }
    }
}

/// Decodes `body` as `T` and encodes it back.
pub fn decode_as<T: serde::de::DeserializeOwned + serde::Serialize>(
    body: &Value,
) -> Result<Value, String> {
    let decoded: T = serde_json::from_value(body.clone()).map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(decoded).unwrap())
}

/// Member paths: `a.b`, arrays as `a[]`.
fn shape(value: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, at: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let path = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    out.insert(path.clone());
                    walk(child, &path, out);
                }
            }
            Value::Array(items) => items
                .iter()
                .for_each(|item| walk(item, &format!("{at}[]"), out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, "", &mut out);
    out
}

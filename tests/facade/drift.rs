//! The type-drift property: an answer that carries new tokens is never thrown away because some other field came
//! as another JSON type.
//!
//! The cases come from the specs: every success example of every vendor's refresh and login, and in it every
//! field that
//! is not a token (nor holds one), changed to each other JSON type (string, number, boolean, null, object,
//! array), one field at a time. A change keeps the value where it can (`"1"` becomes `1`, `7200` becomes
//! `"7200"`), as a vendor whose serializer drifts would send it. Every case must refresh, with the refresh token
//! the unchanged answer carries.

use refresh_facade::{RefreshGrant, Refresher, Vendor};
use refresh_kit_tests::capture::operation_host;
use refresh_runtime::{Operation, TokenRole};
use refresh_sandbox::{Emulator, Fault, Sandbox, SandboxOptions};
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::setup::{Call, grant, login_grants, refresh_operation, refresher, sandbox_config, spec};

/// Every field of `value` with its JSON pointer (`/result_data/code`) and its path in the spec's notation
/// (`result_data.code`, array elements as `[]`).
fn fields(value: &Value, pointer: &str, path: &str, out: &mut Vec<(String, String)>) {
    let children: Vec<(String, String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, child)| {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                (format!("{pointer}/{key}"), child_path, child)
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, child)| (format!("{pointer}/{index}"), format!("{path}[]"), child))
            .collect(),
        _ => Vec::new(),
    };
    for (child_pointer, child_path, child) in children {
        out.push((child_pointer.clone(), child_path.clone()));
        fields(child, &child_pointer, &child_path, out);
    }
}

/// Whether the field at `path` is a token, or holds one: its type must not change.
fn carries_a_token(operation: &Operation, path: &str) -> bool {
    [TokenRole::AccessToken, TokenRole::RefreshToken]
        .into_iter()
        .flat_map(|role| operation.token_paths(role))
        .any(|token| {
            token == path
                || token.starts_with(&format!("{path}."))
                || token.starts_with(&format!("{path}[]"))
        })
}

/// `value` as each other JSON type, keeping the value where the type allows.
fn retyped(value: &Value) -> Vec<Value> {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let number = text
        .parse::<i64>()
        .map(Value::from)
        .or_else(|_| text.parse::<f64>().map(Value::from))
        .unwrap_or_else(|_| Value::from(text.len()));
    let candidates = [
        Value::String(text.clone()),
        number,
        Value::Bool(!matches!(value, Value::Bool(true))),
        Value::Null,
        json!({ "value": value }),
        json!([value]),
    ];
    candidates
        .into_iter()
        .filter(|candidate| std::mem::discriminant(candidate) != std::mem::discriminant(value))
        .collect()
}

/// Runs every drift case of `vendor`'s `operation` (called as `call`); returns how many there were.
async fn check_drift(vendor: Vendor, operation: &'static Operation, call: &Call) -> usize {
    let mut cases = 0;
    for (status, example) in spec(vendor).response_examples(operation) {
        let answer = |body: Value| async move {
            let host =
                operation_host(operation, ResponseTemplate::new(status).set_body_json(body)).await;
            call.send(&refresher(vendor, &host.uri())).await
        };
        // Only the examples the facade reads as a success: the failure samples are not token answers.
        let Ok(unchanged) = answer(example.value.clone()).await else {
            continue;
        };
        let mut all = Vec::new();
        fields(&example.value, "", "", &mut all);
        for (pointer, path) in all {
            if carries_a_token(operation, &path) {
                continue;
            }
            let original = example.value.pointer(&pointer).expect("listed").clone();
            for replacement in retyped(&original) {
                let mut drifted = example.value.clone();
                *drifted.pointer_mut(&pointer).expect("listed") = replacement.clone();
                let context = format!(
                    "{vendor} {} ({}): `{path}` as {replacement}",
                    operation.id, example.name
                );
                match answer(drifted).await {
                    Ok(tokens) => {
                        assert!(
                            tokens.refresh_token == unchanged.refresh_token,
                            "{context}: another refresh token"
                        );
                        assert!(
                            tokens.access_token == unchanged.access_token,
                            "{context}: another access token"
                        );
                        let shown: Vec<String> =
                            tokens.anomalies().iter().map(ToString::to_string).collect();
                        let shown = shown.join(" ");
                        assert!(
                            tokens.refresh_token.is_blank()
                                || !shown.contains(unchanged.refresh_token.expose_secret()),
                            "{context}: an anomaly shows a token"
                        );
                    }
                    Err(error) => panic!("{context}: the new tokens were lost: {error}"),
                }
                cases += 1;
            }
        }
    }
    cases
}

#[tokio::test]
async fn no_type_drift_of_a_non_token_field_loses_the_new_tokens() {
    let mut total = 0;
    for vendor in Vendor::ALL {
        let refresh = Call::Refresh(grant(vendor));
        let mut calls = vec![(refresh_operation(vendor), refresh)];
        for (operation, login) in login_grants(vendor) {
            calls.push((operation, Call::Login(login)));
        }
        for (operation, call) in calls {
            let cases = check_drift(vendor, operation, &call).await;
            assert!(
                cases >= 3,
                "{vendor} {}: {cases} cases, not one field",
                operation.id
            );
            eprintln!(
                "{vendor} {}: {cases} drift cases, 0 lost tokens",
                operation.id
            );
            total += cases;
        }
    }
    eprintln!("type drift: {total} cases, 0 lost tokens");
}

#[test]
fn the_cases_cover_every_other_type_and_keep_values() {
    assert_eq!(
        retyped(&json!("1")),
        [
            json!(1),
            json!(true),
            json!(null),
            json!({"value": "1"}),
            json!(["1"])
        ]
    );
    assert_eq!(
        retyped(&json!(7200)),
        [
            json!("7200"),
            json!(true),
            json!(null),
            json!({"value": 7200}),
            json!([7200])
        ]
    );
    assert_eq!(retyped(&json!(true))[..2], [json!("true"), json!(4)]);
    assert_eq!(retyped(&json!(null)).len(), 5);
    let mut listed = Vec::new();
    fields(&json!({"a": {"b": [1, {"c": 2}]}}), "", "", &mut listed);
    let paths: Vec<&str> = listed.iter().map(|(_, path)| path.as_str()).collect();
    assert_eq!(paths, ["a", "a.b", "a.b[]", "a.b[]", "a.b[].c"]);
    assert_eq!(listed[4].0, "/a/b/1/c");
}

/// A refresher for `emulator` of `sandbox`, with the sandbox's accounts, and the grant of a first login there.
fn at_sandbox(sandbox: &Sandbox, emulator: Emulator) -> (Refresher, RefreshGrant) {
    let login = sandbox.login(emulator);
    let config = sandbox_config(sandbox, emulator);
    let mut grant = RefreshGrant::new(login.refresh_token.as_str())
        .with_access_token(login.access_token.as_str());
    if let Some(component) = login.credential("component_access_token") {
        grant = grant.with_component_access_token(component);
    }
    (Refresher::new(config).unwrap(), grant)
}

/// The sandbox commits a rotation and answers with one non-token field of another type: the facade keeps the
/// rotated tokens (saying what did not match), and the sandbox accepts them on the next refresh.
#[tokio::test]
async fn a_drifted_answer_from_the_sandbox_keeps_the_rotated_token_alive() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    for (emulator, pointer, value) in [
        (
            Emulator::ISolarCloud,
            "/req_serial_num",
            json!(20240921278543u64),
        ),
        (Emulator::SugonAc, "/msg", json!({"text": "success"})),
        (Emulator::MisaCukcuk, "/Total", json!("1")),
        (Emulator::WechatOpen, "/expires_in", json!("7200")),
        (Emulator::Ekuaibao, "/value/corporationId", json!(42)),
    ] {
        let (refresher, grant) = at_sandbox(&sandbox, emulator);
        sandbox.inject(emulator, Fault::retype(pointer, value));
        let tokens = refresher
            .refresh(&grant)
            .await
            .unwrap_or_else(|e| panic!("{emulator}: the rotated token was lost: {e}"));
        assert!(
            !tokens.anomalies().is_empty(),
            "{emulator}: says what did not match"
        );
        assert_eq!(
            tokens.rotated(),
            emulator != Emulator::WechatOpen,
            "{emulator}: WeChat keeps its refresh token, the others rotate"
        );
        let mut next = RefreshGrant::from(&tokens);
        next.component_access_token = grant.component_access_token.clone();
        let next = refresher
            .refresh(&next)
            .await
            .unwrap_or_else(|e| panic!("{emulator}: the kept token does not work: {e}"));
        assert!(
            next.anomalies().is_empty(),
            "{emulator}: {:?}",
            next.anomalies()
        );
    }
}

/// A salvaged answer takes its tokens from where the typed reader looks first (Sugon's `token` before `data`,
/// iSolarCloud's `result_data` before the top level), so a stray value elsewhere cannot displace them.
#[tokio::test]
async fn salvage_prefers_the_place_the_typed_reader_prefers() {
    let renew = refresh_operation(Vendor::SugonAc);
    let jwt = spec(Vendor::SugonAc).success_answer(renew)["data"].clone();
    // A number where the spec says a string forces the salvage.
    let sugon = json!({"code": 0, "msg": "success", "data": "token is valid", "token": jwt});
    let host = operation_host(renew, ResponseTemplate::new(200).set_body_json(sugon)).await;
    let tokens = refresher(Vendor::SugonAc, &host.uri())
        .refresh(&grant(Vendor::SugonAc))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), jwt.as_str().unwrap());
    assert!(!tokens.anomalies().is_empty());

    let refresh = refresh_operation(Vendor::ISolarCloud);
    let isolarcloud = json!({"req_serial_num": 1, "result_code": "1", "access_token": "stray-access", "refresh_token": "stray-refresh",
        "result_data": {"code": "1", "access_token": "documented-access", "refresh_token": "documented-refresh", "expires_in": 172799}});
    let host = operation_host(
        refresh,
        ResponseTemplate::new(200).set_body_json(isolarcloud),
    )
    .await;
    let tokens = refresher(Vendor::ISolarCloud, &host.uri())
        .refresh(&grant(Vendor::ISolarCloud))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "documented-access");
    assert_eq!(tokens.refresh_token.expose_secret(), "documented-refresh");
    assert!(!tokens.anomalies().is_empty());
}

/// A Sugon AC renewal that succeeded with a token that is not a JWT: the vendor rotated (the renewed token is
/// spent), so the new one is kept, as both tokens, with an anomaly and the conservative lifetime, never thrown away
/// as a malformed answer.
#[tokio::test]
async fn a_sugon_renewal_whose_token_is_not_a_jwt_is_kept_with_an_anomaly() {
    let renew = refresh_operation(Vendor::SugonAc);
    let answer = json!({"code": "0", "msg": "success", "data": "opaque-renewed-token"});
    let host = operation_host(renew, ResponseTemplate::new(200).set_body_json(answer)).await;
    let sent = chrono::Utc::now();
    let tokens = refresher(Vendor::SugonAc, &host.uri())
        .refresh(&grant(Vendor::SugonAc))
        .await
        .expect("a rotated token is never thrown away");
    assert_eq!(tokens.access_token.expose_secret(), "opaque-renewed-token");
    assert_eq!(tokens.refresh_token.expose_secret(), "opaque-renewed-token");
    assert!(
        tokens
            .anomalies()
            .contains(&refresh_facade::Anomaly::NotAJwt),
        "{:?}",
        tokens.anomalies()
    );
    let lifetime = tokens.expires_at - sent;
    let conservative = chrono::TimeDelta::from_std(refresh_facade::CONSERVATIVE_LIFETIME).unwrap();
    assert!(
        (lifetime - conservative).abs() < chrono::TimeDelta::seconds(30),
        "{lifetime:?}"
    );
}

//! The emulators against our own specs: every answer they give (successes and refusals, companion endpoints
//! included) comes with a status the spec lists, decodes into the generated type with nothing lost, and has
//! the shape (the set of member paths) of one of the spec's examples for that schema.
//!
//! The emulators are written from the vendors' documentation and the specs too, independently: agreement
//! here is evidence for both; a disagreement is a mistake in one of them.

use std::collections::BTreeSet;

use refresh_sandbox::{Emulator, Sandbox, SandboxOptions, accounts};
use refresh_wire_tests::{Spec, assert_round_trip};
use serde_json::{Value, json};

/// One answer of an emulator, for an operation of its spec.
struct Answer {
    operation: &'static str,
    label: &'static str,
    status: u16,
    body: Option<Value>,
}

/// Sends a raw request (not through the generated client: the test must see the raw answer).
async fn call(
    base: &str,
    operation: &'static str,
    label: &'static str,
    spec: &Spec,
    headers: &[(&str, &str)],
    query: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let (method, path) = spec.route(operation);
    let mut request = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .query(query);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let body = (!bytes.is_empty())
        .then(|| serde_json::from_slice(&bytes).expect("the emulators answer JSON"));
    Answer {
        operation,
        label,
        status,
        body,
    }
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

/// The checks every answer must pass; `decode` decodes a body with the generated type of the operation and
/// encodes it back.
fn check(spec: &Spec, answers: &[Answer], decode: impl Fn(&str, &Value) -> Result<Value, String>) {
    for answer in answers {
        let context = format!(
            "{} {} ({}), HTTP {}",
            spec.vendor, answer.operation, answer.label, answer.status
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
                    .examples_of_schema(&schema)
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

fn decode_as<T: serde::de::DeserializeOwned + serde::Serialize>(
    body: &Value,
) -> Result<Value, String> {
    let decoded: T = serde_json::from_value(body.clone()).map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(decoded).unwrap())
}

async fn start(emulator: Emulator) -> (Sandbox, String, Spec) {
    let sandbox = Sandbox::start(SandboxOptions::only(emulator))
        .await
        .unwrap();
    let base = sandbox.base_url(emulator).unwrap();
    (sandbox, base, Spec::load(emulator.as_str()))
}

#[tokio::test]
async fn isolarcloud_answers_conform_to_the_spec() {
    let (sandbox, base, spec) = start(Emulator::ISolarCloud).await;
    let key = ("x-access-key", accounts::ISOLARCLOUD_ACCESS_KEY);
    let exchange = |code: String| json!({"appkey": accounts::ISOLARCLOUD_APP_KEY, "grant_type": "authorization_code", "code": code, "redirect_uri": accounts::ISOLARCLOUD_REDIRECT_URI});
    let code = sandbox.isolarcloud_authorization_code();
    let first = call(
        &base,
        "exchange_token",
        "success",
        &spec,
        &[key],
        &[],
        Some(exchange(code.clone())),
    )
    .await;
    let refresh = first.body.as_ref().unwrap()["result_data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = |token: &str| {
        Some(json!({"refresh_token": token, "appkey": accounts::ISOLARCLOUD_APP_KEY}))
    };
    let answers = vec![
        call(
            &base,
            "exchange_token",
            "code used up",
            &spec,
            &[key],
            &[],
            Some(exchange(code)),
        )
        .await,
        call(
            &base,
            "refresh_token",
            "success",
            &spec,
            &[key],
            &[],
            body(&refresh),
        )
        .await,
        call(
            &base,
            "refresh_token",
            "rotated away",
            &spec,
            &[key],
            &[],
            body(&refresh),
        )
        .await,
        call(
            &base,
            "refresh_token",
            "no refresh token",
            &spec,
            &[key],
            &[],
            Some(json!({})),
        )
        .await,
        call(
            &base,
            "refresh_token",
            "missing key",
            &spec,
            &[],
            &[],
            body("x"),
        )
        .await,
        call(
            &base,
            "refresh_token",
            "wrong key",
            &spec,
            &[("x-access-key", "nope")],
            &[],
            body("x"),
        )
        .await,
        call(
            &base,
            "refresh_token",
            "wrong appkey",
            &spec,
            &[key],
            &[],
            Some(json!({"refresh_token": "x", "appkey": "nope"})),
        )
        .await,
        first,
    ];
    let codes: Vec<&str> = answers
        .iter()
        .map(|a| {
            let body = a.body.as_ref().unwrap();
            body["result_data"]["code"]
                .as_str()
                .or(body["result_code"].as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(codes, ["2", "1", "5", "4", "E911", "E912", "E914", "1"]);
    check(&spec, &answers, |_, body| {
        decode_as::<refresh_isolarcloud::types::TokenEnvelope>(body)
    });
    sandbox.shutdown().await;
}

#[tokio::test]
async fn sugon_ac_answers_conform_to_the_spec() {
    let (sandbox, base, spec) = start(Emulator::SugonAc).await;
    let credentials = [
        ("user", accounts::SUGON_USER),
        ("password", accounts::SUGON_PASSWORD),
        ("orgId", accounts::SUGON_ORG_ID),
    ];
    let tokens = call(
        &base,
        "get_tokens",
        "success",
        &spec,
        &credentials,
        &[],
        None,
    )
    .await;
    let token = tokens.body.as_ref().unwrap()["data"][0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answers = vec![
        call(
            &base,
            "get_token_state",
            "valid",
            &spec,
            &[("token", &token)],
            &[],
            None,
        )
        .await,
        call(
            &base,
            "renew_token",
            "success",
            &spec,
            &[("token", &token)],
            &[],
            None,
        )
        .await,
        call(
            &base,
            "renew_token",
            "renewed already",
            &spec,
            &[("token", &token)],
            &[],
            None,
        )
        .await,
        call(&base, "renew_token", "no token", &spec, &[], &[], None).await,
        call(
            &base,
            "get_token_state",
            "renewed token",
            &spec,
            &[("token", &token)],
            &[],
            None,
        )
        .await,
        call(
            &base,
            "get_tokens",
            "wrong password",
            &spec,
            &[credentials[0], ("password", "nope"), credentials[2]],
            &[],
            None,
        )
        .await,
        tokens,
    ];
    let codes: Vec<&str> = answers
        .iter()
        .map(|a| a.body.as_ref().unwrap()["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["0", "0", "10004", "10003", "10004", "10004", "0"]);
    check(&spec, &answers, |_, body| {
        decode_as::<refresh_sugon_ac::types::TokenEnvelope>(body)
    });

    // The request log has every request in order; the refresh counter counts renewals per token.
    let log: Vec<String> = sandbox
        .requests(Emulator::SugonAc)
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let get = "POST /ac/openapi/v2/tokens";
    let next = "POST /ac/openapi/v2/tokens/next";
    let state = "GET /ac/openapi/v2/tokens/state";
    assert_eq!(log, [get, state, next, next, next, state, get]);
    assert_eq!(sandbox.refresh_count(Emulator::SugonAc, &token), 2);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn misa_cukcuk_answers_conform_to_the_spec() {
    let (sandbox, base, spec) = start(Emulator::MisaCukcuk).await;
    let (_, refresh) = sandbox.misa_login(accounts::MISA_COMPANY_CODE);
    let body =
        |company: &str, token: &str| Some(json!({"CompanyCode": company, "RefreshToken": token}));
    let answers = vec![
        call(
            &base,
            "refresh_token",
            "success",
            &spec,
            &[],
            &[],
            body(accounts::MISA_COMPANY_CODE, &refresh),
        )
        .await,
        call(
            &base,
            "refresh_token",
            "rotated away",
            &spec,
            &[],
            &[],
            body(accounts::MISA_COMPANY_CODE, &refresh),
        )
        .await,
        call(
            &base,
            "refresh_token",
            "unknown company",
            &spec,
            &[],
            &[],
            body("nope", &refresh),
        )
        .await,
        call(
            &base,
            "refresh_token",
            "empty parameters",
            &spec,
            &[],
            &[],
            Some(json!({})),
        )
        .await,
    ];
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [200, 401, 200, 200]
    );
    let expire = answers[0].body.as_ref().unwrap()["Data"]["Expire_Date"]
        .as_str()
        .unwrap();
    assert!(
        expire.ends_with("+07:00")
            && expire.split('.').nth(1).unwrap().len() == "6186183+07:00".len(),
        "{expire}"
    );
    check(&spec, &answers, |_, body| {
        decode_as::<refresh_misa_cukcuk::types::GraphApiResultOfLoginV2Result>(body)
    });
    sandbox.shutdown().await;
}

#[tokio::test]
async fn wechat_open_answers_conform_to_the_spec() {
    use refresh_wechat_open::types::{
        AuthorizerTokenResponse, ComponentTokenResponse, QueryAuthResponse,
    };
    let (sandbox, base, spec) = start(Emulator::WechatOpen).await;
    let component = json!({"component_appid": accounts::WECHAT_COMPONENT_APPID, "component_appsecret": accounts::WECHAT_COMPONENT_APPSECRET, "component_verify_ticket": accounts::WECHAT_VERIFY_TICKET});
    let first = call(
        &base,
        "get_component_token",
        "success",
        &spec,
        &[],
        &[],
        Some(component),
    )
    .await;
    let token = first.body.as_ref().unwrap()["component_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let query = [("component_access_token", token.as_str())];
    let auth = |code: &str| {
        Some(
            json!({"component_appid": accounts::WECHAT_COMPONENT_APPID, "authorization_code": code}),
        )
    };
    let code = sandbox.wechat_authorization_code();
    let authorized = call(
        &base,
        "query_auth",
        "success",
        &spec,
        &[],
        &query,
        auth(&code),
    )
    .await;
    let refresh =
        authorized.body.as_ref().unwrap()["authorization_info"]["authorizer_refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    let refresh_body = |appid: &str, token: &str| {
        Some(
            json!({"component_appid": accounts::WECHAT_COMPONENT_APPID, "authorizer_appid": appid, "authorizer_refresh_token": token}),
        )
    };
    let answers = vec![
        call(
            &base,
            "get_component_token",
            "wrong appid",
            &spec,
            &[],
            &[],
            Some(json!({"component_appid": "nope"})),
        )
        .await,
        call(
            &base,
            "query_auth",
            "code used up",
            &spec,
            &[],
            &query,
            auth(&code),
        )
        .await,
        call(
            &base,
            "query_auth",
            "bad component token",
            &spec,
            &[],
            &[("component_access_token", "nope")],
            auth("x"),
        )
        .await,
        call(
            &base,
            "refresh_authorizer_token",
            "success",
            &spec,
            &[],
            &query,
            refresh_body(accounts::WECHAT_AUTHORIZER_APPID, &refresh),
        )
        .await,
        call(
            &base,
            "refresh_authorizer_token",
            "newer name of the query parameter",
            &spec,
            &[],
            &[("access_token", token.as_str())],
            refresh_body(accounts::WECHAT_AUTHORIZER_APPID, &refresh),
        )
        .await,
        call(
            &base,
            "refresh_authorizer_token",
            "unknown appid",
            &spec,
            &[],
            &query,
            refresh_body("wx-nope", &refresh),
        )
        .await,
        call(
            &base,
            "refresh_authorizer_token",
            "invalid refresh token",
            &spec,
            &[],
            &query,
            refresh_body(accounts::WECHAT_AUTHORIZER_APPID, "nope"),
        )
        .await,
        first,
        authorized,
    ];
    let codes: Vec<i64> = answers
        .iter()
        .map(|a| a.body.as_ref().unwrap()["errcode"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(codes, [40013, 40029, 40001, 0, 0, 40013, 61023, 0, 0]);
    sandbox
        .clock()
        .advance(std::time::Duration::from_secs(7201));
    let expired = call(
        &base,
        "refresh_authorizer_token",
        "component token expired",
        &spec,
        &[],
        &query,
        refresh_body(accounts::WECHAT_AUTHORIZER_APPID, &refresh),
    )
    .await;
    assert_eq!(expired.body.as_ref().unwrap()["errcode"], 42001);
    let answers: Vec<Answer> = answers.into_iter().chain([expired]).collect();
    check(&spec, &answers, |operation, body| match operation {
        "get_component_token" => decode_as::<ComponentTokenResponse>(body),
        "query_auth" => decode_as::<QueryAuthResponse>(body),
        _ => decode_as::<AuthorizerTokenResponse>(body),
    });
    sandbox.shutdown().await;
}

#[tokio::test]
async fn ekuaibao_answers_conform_to_the_spec() {
    let (sandbox, base, spec) = start(Emulator::Ekuaibao).await;
    let credentials = json!({"appKey": accounts::EKUAIBAO_APP_KEY, "appSecurity": accounts::EKUAIBAO_APP_SECURITY});
    let first = call(
        &base,
        "get_access_token",
        "success",
        &spec,
        &[],
        &[],
        Some(credentials),
    )
    .await;
    let value = first.body.as_ref().unwrap()["value"].clone();
    let (access, refresh) = (
        value["accessToken"].as_str().unwrap(),
        value["refreshToken"].as_str().unwrap(),
    );
    let query = |days: &'static str| {
        [
            ("accessToken", access),
            ("refreshToken", refresh),
            ("expireDate", days),
            ("powerCode", accounts::EKUAIBAO_POWER_CODE),
        ]
    };
    let answers = vec![
        call(
            &base,
            "get_access_token",
            "wrong secret",
            &spec,
            &[],
            &[],
            Some(json!({"appKey": "k", "appSecurity": "s"})),
        )
        .await,
        call(
            &base,
            "refresh_token_with_validity",
            "bad validity",
            &spec,
            &[],
            &query("soon"),
            None,
        )
        .await,
        call(
            &base,
            "refresh_token_with_validity",
            "success",
            &spec,
            &[],
            &query("7"),
            None,
        )
        .await,
        call(
            &base,
            "refresh_token_with_validity",
            "rotated away",
            &spec,
            &[],
            &query("7"),
            None,
        )
        .await,
        call(
            &base,
            "refresh_token",
            "rotated away (plain)",
            &spec,
            &[],
            &[
                ("accessToken", access),
                ("refreshToken", refresh),
                ("powerCode", "219904"),
            ],
            None,
        )
        .await,
        first,
    ];
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [403, 200, 200, 403, 403, 200]
    );
    check(&spec, &answers, |_, body| {
        decode_as::<refresh_ekuaibao::types::AuthEnvelope>(body)
    });
    sandbox.shutdown().await;
}

use refresh_sandbox::{Emulator, accounts};
use refresh_sugon_ac::operations::{ALL, GET_TOKEN_STATE, GET_TOKENS, RENEW_TOKEN};
use refresh_sugon_ac::types::TokenEnvelope;

use crate::case::Case;
use crate::conformance::{check, decode_as, start};

const CODE: &str = "/code";

fn login(password: &str) -> Case {
    Case::new(&GET_TOKENS, "login")
        .header("user", accounts::SUGON_USER)
        .header("password", password)
        .header("orgId", accounts::SUGON_ORG_ID)
}

#[tokio::test]
async fn sugon_ac_answers_conform_to_the_spec() {
    let (sandbox, base, spec) = start(Emulator::SugonAc).await;
    let tokens = login(accounts::SUGON_PASSWORD)
        .answers_code(CODE, "0")
        .send(&base)
        .await;
    let token = tokens.text("/data/0/token");
    let answers = vec![
        Case::new(&GET_TOKEN_STATE, "valid")
            .header("token", &token)
            .answers_code(CODE, "0")
            .send(&base)
            .await,
        Case::new(&RENEW_TOKEN, "success")
            .header("token", &token)
            .answers_code(CODE, "0")
            .send(&base)
            .await,
        Case::new(&RENEW_TOKEN, "renewed already")
            .header("token", &token)
            .answers_code(CODE, "10004")
            .send(&base)
            .await,
        Case::new(&RENEW_TOKEN, "no token")
            .answers_code(CODE, "10003")
            .send(&base)
            .await,
        Case::new(&GET_TOKEN_STATE, "renewed token")
            .header("token", &token)
            .answers_code(CODE, "10004")
            .send(&base)
            .await,
        login("nope").answers_code(CODE, "10004").send(&base).await,
        tokens,
    ];
    check(&spec, ALL, &answers, |_, body| {
        decode_as::<TokenEnvelope>(body)
    });

    // The request log has every request in order; the refresh counter counts renewals per token.
    let log: Vec<(String, String)> = sandbox
        .requests(Emulator::SugonAc)
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone()))
        .collect();
    let route = |op: &refresh_runtime::Operation| (op.method.to_owned(), op.path.to_owned());
    let (get, next, state) = (
        route(&GET_TOKENS),
        route(&RENEW_TOKEN),
        route(&GET_TOKEN_STATE),
    );
    assert_eq!(
        log,
        [
            get.clone(),
            state.clone(),
            next.clone(),
            next.clone(),
            next,
            state,
            get
        ]
    );
    assert_eq!(sandbox.refresh_count(Emulator::SugonAc, &token), 2);
}

/// The emulator's tokens carry their own expiry, as the vendor's do: `expireTime` (milliseconds since the epoch)
/// two hours after issue on the sandbox's clock.
#[tokio::test]
async fn sugon_tokens_claim_their_expiry() {
    use base64::Engine;
    let (sandbox, _base, _spec) = start(Emulator::SugonAc).await;
    let before = sandbox.clock().now();
    let token = sandbox.login(Emulator::SugonAc).access_token;
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .unwrap(),
    )
    .unwrap();
    let expire: i64 = claims["expireTime"].as_str().unwrap().parse().unwrap();
    let expected = (before + chrono::TimeDelta::hours(2)).timestamp_millis();
    assert!(
        (expire - expected).abs() < 5_000,
        "expireTime {expire}, expected about {expected}"
    );
}

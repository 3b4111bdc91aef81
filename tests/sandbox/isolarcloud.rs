use refresh_isolarcloud::operations::{ALL, EXCHANGE_TOKEN, REFRESH_TOKEN};
use refresh_isolarcloud::types::TokenEnvelope;
use refresh_sandbox::{Emulator, accounts};
use serde_json::{Value, json};

use crate::case::Case;
use crate::conformance::{check, decode_as, start};

const KEY: &str = "x-access-key";
const RESULT: &str = "/result_data/code";
const GATEWAY: &str = "/result_code";

fn exchange(code: &str) -> Value {
    json!({"appkey": accounts::ISOLARCLOUD_APP_KEY, "grant_type": "authorization_code", "code": code, "redirect_uri": accounts::ISOLARCLOUD_REDIRECT_URI})
}

fn refresh(token: &str) -> Value {
    json!({"refresh_token": token, "appkey": accounts::ISOLARCLOUD_APP_KEY})
}

#[tokio::test]
async fn isolarcloud_answers_conform_to_the_spec() {
    let (sandbox, base, spec) = start(Emulator::ISolarCloud).await;
    let key = accounts::ISOLARCLOUD_ACCESS_KEY;
    let code = sandbox.authorization_code(Emulator::ISolarCloud).unwrap();
    let first = Case::new(&EXCHANGE_TOKEN, "success")
        .header(KEY, key)
        .json(exchange(&code))
        .answers_code(GATEWAY, "1")
        .send(&base)
        .await;
    let token = first.text("/result_data/refresh_token");
    let answers = vec![
        Case::new(&EXCHANGE_TOKEN, "code used up")
            .header(KEY, key)
            .json(exchange(&code))
            .answers_code(GATEWAY, "2")
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "success")
            .header(KEY, key)
            .json(refresh(&token))
            .answers_code(RESULT, "1")
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "rotated away")
            .header(KEY, key)
            .json(refresh(&token))
            .answers_code(RESULT, "5")
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "no refresh token")
            .header(KEY, key)
            .json(json!({}))
            .answers_code(RESULT, "4")
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "missing key")
            .json(refresh("x"))
            .answers_code(GATEWAY, "E911")
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "wrong key")
            .header(KEY, "nope")
            .json(refresh("x"))
            .answers_code(GATEWAY, "E912")
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "wrong appkey")
            .header(KEY, key)
            .json(json!({"refresh_token": "x", "appkey": "nope"}))
            .answers_code(GATEWAY, "E914")
            .send(&base)
            .await,
        first,
    ];
    check(&spec, ALL, &answers, |_, body| {
        decode_as::<TokenEnvelope>(body)
    });
}

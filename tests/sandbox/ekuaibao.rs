use refresh_ekuaibao::operations::{
    ALL, GET_ACCESS_TOKEN, REFRESH_TOKEN, REFRESH_TOKEN_WITH_VALIDITY,
};
use refresh_ekuaibao::types::AuthEnvelope;
use refresh_sandbox::{Emulator, accounts};
use serde_json::{Value, json};

use crate::case::Case;
use crate::conformance::{check, decode_as, start};

const ERROR_CODE: &str = "/errorCode";

#[tokio::test]
async fn ekuaibao_answers_conform_to_the_spec() {
    let (_sandbox, base, spec) = start(Emulator::Ekuaibao).await;
    let first = Case::new(&GET_ACCESS_TOKEN, "success")
        .json(json!({"appKey": accounts::EKUAIBAO_APP_KEY, "appSecurity": accounts::EKUAIBAO_APP_SECURITY}))
        .answers_code(ERROR_CODE, Value::Null)
        .send(&base)
        .await;
    let (access, refresh) = (
        first.text("/value/accessToken"),
        first.text("/value/refreshToken"),
    );
    let with_validity = |label, days: &str| {
        Case::new(&REFRESH_TOKEN_WITH_VALIDITY, label)
            .query("accessToken", &access)
            .query("refreshToken", &refresh)
            .query("expireDate", days)
            .query("powerCode", accounts::EKUAIBAO_POWER_CODE)
    };
    let answers = vec![
        Case::new(&GET_ACCESS_TOKEN, "wrong secret")
            .json(json!({"appKey": "k", "appSecurity": "s"}))
            .answers_status(403)
            .answers_code(ERROR_CODE, 403)
            .send(&base)
            .await,
        with_validity("bad validity", "soon")
            .answers_code(ERROR_CODE, 400)
            .send(&base)
            .await,
        with_validity("success", "7")
            .answers_code(ERROR_CODE, Value::Null)
            .send(&base)
            .await,
        with_validity("rotated away", "7")
            .answers_status(403)
            .answers_code(ERROR_CODE, 403)
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "rotated away (plain)")
            .query("accessToken", &access)
            .query("refreshToken", &refresh)
            .query("powerCode", accounts::EKUAIBAO_POWER_CODE)
            .answers_status(403)
            .answers_code(ERROR_CODE, 403)
            .send(&base)
            .await,
        first,
    ];
    check(&spec, ALL, &answers, |_, body| {
        decode_as::<AuthEnvelope>(body)
    });
}

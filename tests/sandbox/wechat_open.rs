use std::time::Duration;

use refresh_sandbox::{Emulator, accounts};
use refresh_wechat_open::operations::{
    ALL, GET_COMPONENT_TOKEN, QUERY_AUTH, REFRESH_AUTHORIZER_TOKEN,
};
use refresh_wechat_open::types::{
    AuthorizerTokenResponse, ComponentTokenResponse, QueryAuthResponse,
};
use serde_json::{Value, json};

use crate::case::Case;
use crate::conformance::{check, decode_as, start};

const ERRCODE: &str = "/errcode";
const COMPONENT_TOKEN: &str = "component_access_token";

fn authorize(code: &str) -> Value {
    json!({"component_appid": accounts::WECHAT_COMPONENT_APPID, "authorization_code": code})
}

fn refresh(appid: &str, token: &str) -> Value {
    json!({"component_appid": accounts::WECHAT_COMPONENT_APPID, "authorizer_appid": appid, "authorizer_refresh_token": token})
}

#[tokio::test]
async fn wechat_open_answers_conform_to_the_spec() {
    let (sandbox, base, spec) = start(Emulator::WechatOpen).await;
    let first = Case::new(&GET_COMPONENT_TOKEN, "success")
        .json(json!({"component_appid": accounts::WECHAT_COMPONENT_APPID, "component_appsecret": accounts::WECHAT_COMPONENT_APPSECRET, "component_verify_ticket": accounts::WECHAT_VERIFY_TICKET}))
        .answers_code(ERRCODE, Value::Null)
        .send(&base)
        .await;
    let component = first.text("/component_access_token");
    let code = sandbox.authorization_code(Emulator::WechatOpen).unwrap();
    let authorized = Case::new(&QUERY_AUTH, "success")
        .query(COMPONENT_TOKEN, &component)
        .json(authorize(&code))
        .answers_code(ERRCODE, Value::Null)
        .send(&base)
        .await;
    let token = authorized.text("/authorization_info/authorizer_refresh_token");
    let appid = accounts::WECHAT_AUTHORIZER_APPID;
    let mut answers = vec![
        Case::new(&GET_COMPONENT_TOKEN, "wrong appid")
            .json(json!({"component_appid": "nope"}))
            .answers_code(ERRCODE, 40013)
            .send(&base)
            .await,
        Case::new(&QUERY_AUTH, "code used up")
            .query(COMPONENT_TOKEN, &component)
            .json(authorize(&code))
            .answers_code(ERRCODE, 40029)
            .send(&base)
            .await,
        Case::new(&QUERY_AUTH, "bad component token")
            .query(COMPONENT_TOKEN, "nope")
            .json(authorize("x"))
            .answers_code(ERRCODE, 40001)
            .send(&base)
            .await,
        Case::new(&REFRESH_AUTHORIZER_TOKEN, "success")
            .query(COMPONENT_TOKEN, &component)
            .json(refresh(appid, &token))
            .answers_code(ERRCODE, Value::Null)
            .send(&base)
            .await,
        Case::new(
            &REFRESH_AUTHORIZER_TOKEN,
            "newer name of the query parameter",
        )
        .query("access_token", &component)
        .json(refresh(appid, &token))
        .answers_code(ERRCODE, Value::Null)
        .send(&base)
        .await,
        Case::new(&REFRESH_AUTHORIZER_TOKEN, "unknown appid")
            .query(COMPONENT_TOKEN, &component)
            .json(refresh("wx-nope", &token))
            .answers_code(ERRCODE, 40013)
            .send(&base)
            .await,
        Case::new(&REFRESH_AUTHORIZER_TOKEN, "invalid refresh token")
            .query(COMPONENT_TOKEN, &component)
            .json(refresh(appid, "nope"))
            .answers_code(ERRCODE, 61023)
            .send(&base)
            .await,
        first,
        authorized,
    ];
    sandbox.clock().advance(Duration::from_secs(7201));
    answers.push(
        Case::new(&REFRESH_AUTHORIZER_TOKEN, "component token expired")
            .query(COMPONENT_TOKEN, &component)
            .json(refresh(appid, &token))
            .answers_code(ERRCODE, 42001)
            .send(&base)
            .await,
    );
    check(&spec, ALL, &answers, |operation, body| {
        if *operation == GET_COMPONENT_TOKEN {
            decode_as::<ComponentTokenResponse>(body)
        } else if *operation == QUERY_AUTH {
            decode_as::<QueryAuthResponse>(body)
        } else {
            decode_as::<AuthorizerTokenResponse>(body)
        }
    });
}

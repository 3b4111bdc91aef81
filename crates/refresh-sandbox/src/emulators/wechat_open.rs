//! WeChat Open Platform (third-party platform): the component token in the query string
//! (`component_access_token`, or `access_token` as the newer pages name it), JSON bodies, and errors as
//! `{errcode, errmsg}` with HTTP 200: 40001 invalid credential, 40013 invalid appid, 40029 invalid code,
//! 42001 (component) access token expired, 61023 invalid refresh token. Access tokens last 7200 seconds; the
//! authorizer refresh token does not rotate on refresh and has no timer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::{field, json, json_body, seconds};
use crate::accounts::{
    WECHAT_AUTHORIZER_APPID, WECHAT_COMPONENT_APPID, WECHAT_COMPONENT_APPSECRET,
    WECHAT_VERIFY_TICKET,
};
use crate::tokens::{Refusal, Tokens};
use crate::{Emulator, Shared};
use chrono::{DateTime, Utc};

const TOKEN_LIFETIME_SECONDS: i64 = 7200;

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) component: Tokens,
    pub(crate) access: Tokens,
    pub(crate) refresh: Tokens,
    pub(crate) codes: Tokens,
}

impl Ledger {
    /// What a refresh presents: its refresh tokens.
    pub(crate) fn refresh_tokens(&self) -> &Tokens {
        &self.refresh
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/cgi-bin/component/api_component_token",
            post(component_token),
        )
        .route("/cgi-bin/component/api_query_auth", post(query_auth))
        .route(
            "/cgi-bin/component/api_authorizer_token",
            post(authorizer_token),
        )
}

pub(crate) fn new_authorization_code(shared: &Shared) -> String {
    let now = shared.clock.now();
    shared.ledgers().wechat_open.codes.issue(
        "queryauthcode@@@",
        now,
        Some(seconds(3600)),
        WECHAT_AUTHORIZER_APPID,
    )
}

/// The wire name of the platform's own token, which an authorizer refresh carries.
pub(crate) const COMPONENT_ACCESS_TOKEN: &str = "component_access_token";

pub(crate) fn login(shared: &Shared) -> crate::Login {
    let now = shared.clock.now();
    let mut ledgers = shared.ledgers();
    let state = &mut ledgers.wechat_open;
    let component = issue_component_token(state, now);
    let (access_token, refresh_token) = authorize(state, now);
    crate::Login::new(access_token, refresh_token)
        .with_credential(COMPONENT_ACCESS_TOKEN, component)
}

/// A component access token for the platform.
fn issue_component_token(state: &mut Ledger, now: DateTime<Utc>) -> String {
    let lifetime = Some(seconds(TOKEN_LIFETIME_SECONDS));
    state
        .component
        .issue("component-", now, lifetime, WECHAT_COMPONENT_APPID)
}

/// A new authorizer access token.
fn issue_authorizer_access(state: &mut Ledger, now: DateTime<Utc>) -> String {
    let lifetime = Some(seconds(TOKEN_LIFETIME_SECONDS));
    state
        .access
        .issue("authorizer-access-", now, lifetime, WECHAT_AUTHORIZER_APPID)
}

/// The authorizer's tokens after it authorized the platform: `(access token, refresh token)`. The refresh token
/// has no timer: it lives until the user authorizes again.
fn authorize(state: &mut Ledger, now: DateTime<Utc>) -> (String, String) {
    let access = issue_authorizer_access(state, now);
    let refresh = state
        .refresh
        .issue("refreshtoken@@@", now, None, WECHAT_AUTHORIZER_APPID);
    (access, refresh)
}

/// The checks every call on an authorizer's behalf starts with: the platform's component token (query
/// string) and its appid (body).
fn check_platform(
    state: &Ledger,
    query: &HashMap<String, String>,
    body: &Value,
    now: DateTime<Utc>,
) -> Option<Response> {
    if let Some(refused) = check_component_token(state, query, now) {
        return Some(refused);
    }
    (field(body, "component_appid") != Some(WECHAT_COMPONENT_APPID))
        .then(|| error(40013, "invalid appid"))
}

fn error(errcode: i64, errmsg: &str) -> Response {
    json(
        StatusCode::OK,
        json!({"errcode": errcode, "errmsg": errmsg}),
    )
}

/// The platform's component token from the query string, checked.
fn check_component_token(
    state: &Ledger,
    query: &HashMap<String, String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Response> {
    let token = query
        .get("component_access_token")
        .or_else(|| query.get("access_token"));
    match token.map(|t| state.component.check(t, now)) {
        Some(Ok(_)) => None,
        Some(Err(Refusal::Expired)) => Some(error(42001, "access token expired")),
        _ => Some(error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        )),
    }
}

async fn component_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body = json_body(&body);
    if field(&body, "component_appid") != Some(WECHAT_COMPONENT_APPID) {
        return error(40013, "invalid appid");
    }
    if field(&body, "component_appsecret") != Some(WECHAT_COMPONENT_APPSECRET)
        || field(&body, "component_verify_ticket") != Some(WECHAT_VERIFY_TICKET)
    {
        return error(
            40001,
            "invalid credential, appsecret or verify ticket is wrong",
        );
    }
    let now = shared.clock.now();
    let token = issue_component_token(&mut shared.ledgers().wechat_open, now);
    json(
        StatusCode::OK,
        json!({"component_access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS}),
    )
}

async fn query_auth(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body = json_body(&body);
    let now = shared.clock.now();
    let mut ledgers = shared.ledgers();
    let state = &mut ledgers.wechat_open;
    if let Some(refused) = check_platform(state, &query, &body, now) {
        return refused;
    }
    let code = field(&body, "authorization_code").unwrap_or_default();
    if state.codes.check(code, now).is_err() {
        return error(40029, "invalid code");
    }
    state.codes.spend(code);
    let (access, refresh) = authorize(state, now);
    json(
        StatusCode::OK,
        json!({"authorization_info": {
            "authorizer_appid": WECHAT_AUTHORIZER_APPID,
            "authorizer_access_token": access,
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "authorizer_refresh_token": refresh,
            "func_info": [{"funcscope_category": {"id": 1}}, {"funcscope_category": {"id": 2}}],
        }}),
    )
}

async fn authorizer_token(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body: Value = json_body(&body);
    let now = shared.clock.now();
    if let Some(presented) = field(&body, "authorizer_refresh_token") {
        shared.record_refresh(Emulator::WechatOpen, presented);
    }
    let mut ledgers = shared.ledgers();
    let state = &mut ledgers.wechat_open;
    if let Some(refused) = check_platform(state, &query, &body, now) {
        return refused;
    }
    let Some(authorizer) =
        field(&body, "authorizer_appid").filter(|a| *a == WECHAT_AUTHORIZER_APPID)
    else {
        return error(40013, "invalid appid");
    };
    let refresh = field(&body, "authorizer_refresh_token").unwrap_or_default();
    match state.refresh.check(refresh, now) {
        Ok(issued) if issued.subject == authorizer => {}
        _ => return error(61023, "invalid refresh token"),
    }
    let access = issue_authorizer_access(state, now);
    json(
        StatusCode::OK,
        json!({"authorizer_access_token": access, "expires_in": TOKEN_LIFETIME_SECONDS, "authorizer_refresh_token": refresh}),
    )
}

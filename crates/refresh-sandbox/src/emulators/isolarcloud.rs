//! Sungrow iSolarCloud: `x-access-key` header and `appkey` body field on every call; every outcome with HTTP
//! 200 in the `{req_serial_num, result_code, result_msg, result_data}` envelope. Refresh outcomes are in
//! `result_data.code` ("1" ok, "4" invalid request, "5" invalid refresh token, "-2" refresh token expired);
//! gateway refusals in `result_code` (E911, E912, E914). Refresh tokens rotate and live 30 days; access tokens
//! 172799 seconds.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::{field, header, json, json_body, seconds, uuid_like};
use crate::accounts::{ISOLARCLOUD_ACCESS_KEY, ISOLARCLOUD_APP_KEY, ISOLARCLOUD_REDIRECT_URI};
use crate::tokens::{Refusal, Tokens, random_hex};
use crate::{Emulator, Shared};

const ACCESS_LIFETIME_SECONDS: i64 = 172_799;
const REFRESH_LIFETIME_SECONDS: i64 = 30 * 24 * 3600;

#[derive(Debug, Default)]
pub(crate) struct Ledger {
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
        .route("/openapi/apiManage/token", post(exchange))
        .route("/openapi/apiManage/refreshToken", post(refresh))
}

pub(crate) fn new_authorization_code(shared: &Shared) -> String {
    let now = shared.clock.now();
    shared
        .ledgers()
        .isolarcloud
        .codes
        .issue("", now, Some(seconds(600)), "user")
}

pub(crate) fn login(shared: &Shared) -> crate::Login {
    let now = shared.clock.now();
    let (access_token, refresh_token) = issue(&mut shared.ledgers().isolarcloud, now);
    crate::Login::new(access_token, refresh_token)
}

fn envelope(result_code: &str, result_msg: &str, result_data: Option<Value>) -> Response {
    let mut body = json!({"req_serial_num": random_hex(), "result_code": result_code, "result_msg": result_msg});
    if let Some(data) = result_data {
        body["result_data"] = data;
    }
    json(StatusCode::OK, body)
}

/// The gateway's checks of the app's secret key.
fn gateway(headers: &HeaderMap) -> Option<Response> {
    match header(headers, "x-access-key") {
        None => Some(envelope("E911", "missing x-access-key", None)),
        Some(key) if key != ISOLARCLOUD_ACCESS_KEY => {
            Some(envelope("E912", "illegal x-access-key", None))
        }
        Some(_) => None,
    }
}

async fn refresh(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = gateway(&headers) {
        return refused;
    }
    let body = json_body(&body);
    if body.get("appkey").is_some() && field(&body, "appkey") != Some(ISOLARCLOUD_APP_KEY) {
        return envelope("E914", "appkey and key do not match", None);
    }
    // The documented refusal: the envelope says success, result_data.code says why not.
    let refused = |code: &str| envelope("1", "success", Some(json!({"code": code})));
    let Some(old) = field(&body, "refresh_token") else {
        return refused("4");
    };
    shared.record_refresh(Emulator::ISolarCloud, old);
    let now = shared.clock.now();
    let mut ledgers = shared.ledgers();
    let state = &mut ledgers.isolarcloud;
    match state.refresh.check(old, now) {
        Ok(_) => {}
        Err(Refusal::Expired) => return refused("-2"),
        Err(Refusal::Unknown | Refusal::Spent | Refusal::Revoked) => return refused("5"),
    }
    state.refresh.spend(old);
    let (access, refresh) = issue(state, now);
    envelope(
        "1",
        "success",
        Some(json!({
            "access_token": access,
            "refresh_token": refresh,
            "code": "1",
            "token_type": "bearer",
            "expires_in": ACCESS_LIFETIME_SECONDS,
        })),
    )
}

async fn exchange(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = gateway(&headers) {
        return refused;
    }
    let body = json_body(&body);
    if field(&body, "grant_type") != Some("authorization_code") {
        return envelope("6", "unsupported grant type", None);
    }
    if field(&body, "appkey") != Some(ISOLARCLOUD_APP_KEY) {
        return envelope("4", "invalid client", None);
    }
    let now = shared.clock.now();
    let mut ledgers = shared.ledgers();
    let state = &mut ledgers.isolarcloud;
    let code = field(&body, "code").unwrap_or_default();
    if state.codes.check(code, now).is_err() {
        return envelope("2", "invalid code", None);
    }
    if field(&body, "redirect_uri") != Some(ISOLARCLOUD_REDIRECT_URI) {
        return envelope("5", "redirect uri mismatch", None);
    }
    state.codes.spend(code);
    let (access, refresh) = issue(state, now);
    envelope(
        "1",
        "success",
        Some(json!({
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": ACCESS_LIFETIME_SECONDS,
            "auth_ps_list": ["1234567"],
            "auth_user": 123456,
        })),
    )
}

fn issue(state: &mut Ledger, now: chrono::DateTime<chrono::Utc>) -> (String, String) {
    let access = uuid_like();
    state.access.insert(
        access.clone(),
        now,
        Some(seconds(ACCESS_LIFETIME_SECONDS)),
        ISOLARCLOUD_APP_KEY,
    );
    let refresh = uuid_like();
    state.refresh.insert(
        refresh.clone(),
        now,
        Some(seconds(REFRESH_LIFETIME_SECONDS)),
        ISOLARCLOUD_APP_KEY,
    );
    (access, refresh)
}

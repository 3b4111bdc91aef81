//! Ekuaibao (Hose) open API: JSON `{appKey, appSecurity}` to get tokens; refreshes take `accessToken`,
//! `refreshToken`, `powerCode` (219904) and, with a chosen validity, `expireDate` (days) in the query string.
//! Answers `{"value": {accessToken, refreshToken, expireTime, corporationId}}`; failures
//! `{errorCode, errorMessage, errorDetails, code, data}`, with HTTP 403 for `errorCode: 403` (unauthorized).
//! Both tokens rotate on refresh, and only a still valid access token can be refreshed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::{field, json, json_body};
use crate::accounts::{
    EKUAIBAO_APP_KEY, EKUAIBAO_APP_SECURITY, EKUAIBAO_CORPORATION_ID, EKUAIBAO_POWER_CODE,
};
use crate::tokens::{Tokens, random_hex};
use crate::{Emulator, Shared};

const ACCESS_LIFETIME: TimeDelta = TimeDelta::hours(2);
const PLAIN_REFRESH_LIFETIME: TimeDelta = TimeDelta::days(32);

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) access: Tokens,
    pub(crate) refresh: Tokens,
    /// refresh token → the access token issued with it.
    pub(crate) pairs: HashMap<String, String>,
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
            "/api/openapi/v1/auth/getAccessToken",
            post(get_access_token),
        )
        .route("/api/openapi/v2/auth/refreshToken", post(plain_refresh))
        .route(
            "/api/openapi/v2/auth/refreshToken/expireDate",
            post(refresh_with_validity),
        )
}

pub(crate) fn login(shared: &Shared) -> crate::Login {
    let now = shared.clock.now();
    let (access_token, refresh_token) = issue_pair(shared, now, now + ACCESS_LIFETIME);
    crate::Login::new(access_token, refresh_token)
}

fn failure(status: StatusCode, error_code: i64, message: &str) -> Response {
    json(
        status,
        json!({"errorCode": error_code, "errorMessage": message, "errorDetails": null, "code": null, "data": null}),
    )
}

fn unauthorized() -> Response {
    failure(StatusCode::FORBIDDEN, 403, "未授权")
}

fn bad_parameter(message: &str) -> Response {
    failure(StatusCode::OK, 400, message)
}

async fn get_access_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body = json_body(&body);
    if field(&body, "appKey") != Some(EKUAIBAO_APP_KEY)
        || field(&body, "appSecurity") != Some(EKUAIBAO_APP_SECURITY)
    {
        return unauthorized();
    }
    let now = shared.clock.now();
    issue(&shared, now, now + ACCESS_LIFETIME)
}

async fn plain_refresh(
    shared: State<Arc<Shared>>,
    query: Query<HashMap<String, String>>,
) -> Response {
    refresh(shared, query, false).await
}

async fn refresh_with_validity(
    shared: State<Arc<Shared>>,
    query: Query<HashMap<String, String>>,
) -> Response {
    refresh(shared, query, true).await
}

async fn refresh(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    with_validity: bool,
) -> Response {
    let (Some(access), Some(refresh)) = (query.get("accessToken"), query.get("refreshToken"))
    else {
        return bad_parameter("accessToken and refreshToken are required");
    };
    if query.get("powerCode").map(String::as_str) != Some(EKUAIBAO_POWER_CODE) {
        return bad_parameter("powerCode must be 219904");
    }
    let validity = if with_validity {
        match query
            .get("expireDate")
            .and_then(|d| d.parse::<i64>().ok())
            .filter(|d| (1..=3650).contains(d))
        {
            Some(days) => TimeDelta::days(days),
            None => return bad_parameter("expireDate must be a number of days"),
        }
    } else {
        PLAIN_REFRESH_LIFETIME
    };
    shared.record_refresh(Emulator::Ekuaibao, refresh);
    let now = shared.clock.now();
    {
        let mut ledgers = shared.ledgers();
        let state = &mut ledgers.ekuaibao;
        let paired = state.pairs.get(refresh.as_str()) == Some(access);
        // "If accessToken has already expired it cannot be refreshed."
        if !paired
            || state.refresh.check(refresh, now).is_err()
            || state.access.check(access, now).is_err()
        {
            return unauthorized();
        }
        state.refresh.spend(refresh);
        state.access.spend(access);
    }
    issue(&shared, now, now + validity)
}

fn issue(shared: &Shared, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> Response {
    let (access, refresh) = issue_pair(shared, now, expires_at);
    json(
        StatusCode::OK,
        json!({"value": {
            "accessToken": access,
            "refreshToken": refresh,
            "expireTime": expires_at.timestamp_millis(),
            "corporationId": EKUAIBAO_CORPORATION_ID,
        }}),
    )
}

fn issue_pair(shared: &Shared, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> (String, String) {
    let token = || format!("ID_{}:{EKUAIBAO_CORPORATION_ID}", &random_hex()[..11]);
    let (access, refresh) = (token(), token());
    let mut ledgers = shared.ledgers();
    let state = &mut ledgers.ekuaibao;
    state.access.insert(
        access.clone(),
        now,
        Some(expires_at - now),
        EKUAIBAO_CORPORATION_ID,
    );
    state
        .refresh
        .insert(refresh.clone(), now, None, EKUAIBAO_CORPORATION_ID);
    state.pairs.insert(refresh.clone(), access.clone());
    (access, refresh)
}

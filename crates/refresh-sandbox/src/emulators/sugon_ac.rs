//! Sugon / SCNet AC: credentials in headers (`user`, `password`, `orgId`; then `token`), answers
//! `{code, msg, data}` with `code` a string ("0" ok, 10003 parameters incomplete, 10004 invalid parameter).
//! Tokens are JWTs whose payload carries `expireTime` (milliseconds, a string). A token renews itself, once, and
//! only until 24 hours after it expired.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::{header, json, seconds};
use crate::accounts::{SUGON_ORG_ID, SUGON_PASSWORD, SUGON_USER};
use crate::tokens::{Tokens, random_hex};
use crate::{Emulator, Shared};

/// The sandbox's token lifetime (the vendor does not document one).
const TOKEN_LIFETIME_SECONDS: i64 = 2 * 3600;
/// "Once a token has been expired for 24 hours it can no longer be renewed."
const RENEWAL_GRACE: TimeDelta = TimeDelta::hours(24);

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) tokens: Tokens,
}

impl Ledger {
    /// What a refresh presents: the token a renewal presents (Sugon AC renews the token itself).
    pub(crate) fn refresh_tokens(&self) -> &Tokens {
        &self.tokens
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/ac/openapi/v2/tokens", post(get_tokens))
        .route("/ac/openapi/v2/tokens/next", post(renew))
        .route("/ac/openapi/v2/tokens/state", get(token_state))
}

pub(crate) fn login(shared: &Shared) -> crate::Login {
    let token = issue(shared, SUGON_USER);
    crate::Login::new(token.clone(), token)
}

fn failure(code: &str, msg: &str) -> Response {
    json(StatusCode::OK, json!({"msg": msg, "code": code}))
}

fn incomplete() -> Response {
    failure("10003", "参数不全")
}

fn invalid() -> Response {
    failure("10004", "参数无效")
}

async fn get_tokens(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (Some(user), Some(password), Some(org)) = (
        header(&headers, "user"),
        header(&headers, "password"),
        header(&headers, "orgId"),
    ) else {
        return incomplete();
    };
    if (user, password, org) != (SUGON_USER, SUGON_PASSWORD, SUGON_ORG_ID) {
        return invalid();
    }
    let token = issue(&shared, user);
    json(
        StatusCode::OK,
        json!({"code": "0", "msg": "success", "data": [{"clusterId": "0", "clusterName": "ac", "token": token}]}),
    )
}

async fn renew(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(old) = header(&headers, "token") else {
        return incomplete();
    };
    shared.record_refresh(Emulator::SugonAc, old);
    let now = shared.clock.now();
    let user = {
        let mut ledgers = shared.ledgers();
        let tokens = &mut ledgers.sugon_ac.tokens;
        let renewable = tokens.get(old).is_some_and(|t| {
            !t.spent
                && t.expires_at
                    .is_some_and(|expires_at| now <= expires_at + RENEWAL_GRACE)
        });
        if !renewable {
            return invalid();
        }
        let user = tokens
            .get(old)
            .map(|t| t.subject.clone())
            .unwrap_or_default();
        tokens.spend(old);
        user
    };
    let token = issue(&shared, &user);
    // As the documentation's sample: the new token in `data`, as a string.
    json(
        StatusCode::OK,
        json!({"msg": "success", "code": "0", "data": token}),
    )
}

async fn token_state(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(token) = header(&headers, "token") else {
        return incomplete();
    };
    let now = shared.clock.now();
    if shared.ledgers().sugon_ac.tokens.check(token, now).is_err() {
        return invalid();
    }
    json(
        StatusCode::OK,
        json!({"code": "0", "msg": "success", "data": "token is valid"}),
    )
}

fn issue(shared: &Shared, user: &str) -> String {
    let now = shared.clock.now();
    let token = jwt(user, now + seconds(TOKEN_LIFETIME_SECONDS));
    shared.ledgers().sugon_ac.tokens.insert(
        token.clone(),
        now,
        Some(seconds(TOKEN_LIFETIME_SECONDS)),
        user,
    );
    token
}

/// A JWT shaped like the documentation's: HS256 header, the documented claims, and a signature only the
/// vendor could check (here random: nobody checks it but the sandbox, which looks tokens up instead).
fn jwt(user: &str, expires_at: DateTime<Utc>) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let claims = json!({
        "computeUser": user,
        "accountStatus": "Trial",
        "creator": "ac",
        "role": "1",
        "expireTime": expires_at.timestamp_millis().to_string(),
        "clusterId": "0",
        "invoker": random_hex(),
        "user": user,
        "userId": "11655048541",
    });
    format!(
        "{}.{}.{}",
        encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        encode(claims.to_string().as_bytes()),
        encode(random_hex().as_bytes())
    )
}

//! Every documentation sample of every vendor's refresh and login, through the facade: the normalized
//! `TokenSet` or `RefreshError` (and a login's request), snapshotted.

use chrono::{DateTime, Utc};
use refresh_facade::{Clock, ExpirySource, RefreshError, RefreshWindow, TokenSet, Vendor};
use refresh_kit_tests::capture::{CapturedBody, CapturedRequest, operation_host};
use refresh_kit_tests::snapshot_settings_in;
use refresh_runtime::Operation;
use wiremock::ResponseTemplate;

use crate::setup::{
    Call, documented_login_instant, grant, login_grants, refresh_operation, refresher, spec,
};

/// A token set as text. Instants that count from the moment of sending are shown relative to it, so that the
/// snapshot does not change from run to run; the vendor's absolute instants are shown as they are.
pub fn render_tokens(tokens: &TokenSet) -> String {
    let relative = |at: DateTime<Utc>, from: DateTime<Utc>, name: &str| {
        let seconds = (at - from).num_milliseconds() as f64 / 1000.0;
        format!("{name} + {seconds}s")
    };
    let expires_relative = matches!(
        tokens.expiry_source,
        ExpirySource::LifetimeSeconds | ExpirySource::ConservativeDefault
    );
    let expires_at = if expires_relative {
        relative(tokens.expires_at, tokens.obtained_at, "obtained_at")
    } else {
        tokens.expires_at.to_rfc3339()
    };
    let refreshable_until =
        tokens
            .refreshable_until
            .map(|until| match tokens.vendor.refresh_window() {
                Some(
                    RefreshWindow::UntilAccessTokenExpiry
                    | RefreshWindow::AfterAccessTokenExpiry { .. },
                ) => relative(until, tokens.expires_at, "expires_at"),
                _ => relative(until, tokens.obtained_at, "obtained_at"),
            });
    format!(
        "vendor: {}\naccess_token: {}\nrefresh_token: {}\nrotation: {:?}\ntoken_type: {:?}\nexpires_at: {}\n\
         expiry_source: {:?}\nrefreshable_until: {:?}\nextras: {:#?}\n",
        tokens.vendor,
        tokens.access_token.expose_secret(),
        tokens.refresh_token.expose_secret(),
        tokens.rotation,
        tokens.token_type,
        expires_at,
        tokens.expiry_source,
        refreshable_until,
        tokens.extras,
    )
}

pub fn render_error(error: &RefreshError) -> String {
    format!(
        "error: {error}\nkind: {}\nvendor: {}\nhttp_status: {:?}\nvendor_code: {:?}\nvendor_message: {:?}\n\
         request_id: {:?}\nretryable: {}\nretry_after: {:?}\n",
        error.kind(),
        error.vendor(),
        error.http_status(),
        error.vendor_code(),
        error.vendor_message(),
        error.request_id(),
        error.is_retryable(),
        error.retry_after(),
    )
}

/// Every documentation sample of `operation`'s answers through the facade's `call`, normalized and snapshotted;
/// for a login also the request the facade sends.
async fn normalize_every_sample(vendor: Vendor, operation: &Operation, call: &Call) {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/facade/snapshots");
    let what = match call {
        Call::Refresh(_) => "",
        Call::Login(_) => " login",
    };
    for (index, (status, example)) in spec(vendor)
        .response_examples(operation)
        .into_iter()
        .enumerate()
    {
        let server = operation_host(
            operation,
            ResponseTemplate::new(status).set_body_json(&example.value),
        )
        .await;
        let mut refresher = refresher(vendor, &server.uri());
        if let (Call::Login(_), Some(at)) = (call, documented_login_instant(vendor)) {
            refresher = refresher.with_clock(Clock::from_fn(move || at));
        }
        let outcome = match call.send(&refresher).await {
            Ok(tokens) => render_tokens(&tokens),
            Err(error) => render_error(&error),
        };
        let name = format!(
            "{vendor}__facade__{}__{status}__{}",
            operation.id, example.name
        );
        let description = format!(
            "{vendor}{what} through the facade, HTTP {status}: {}",
            example.summary
        );
        snapshot_settings_in(directory, description)
            .bind(|| insta::assert_snapshot!(name, outcome));
        if matches!(call, Call::Login(_)) && index == 0 {
            let requests = server.received_requests().await.unwrap();
            assert_eq!(requests.len(), 1, "one login sends one request");
            let request = CapturedRequest::from_wiremock(&requests[0]);
            if documented_login_instant(vendor).is_some() {
                // Sent at the sample's instant, the signed login is the documented request, signature included.
                let documented = &spec(vendor).request_examples(operation)[0].value;
                assert_eq!(
                    request.body,
                    CapturedBody::Json(documented.clone()),
                    "{vendor}"
                );
            }
            let name = format!("{vendor}__facade__{}__request", operation.id);
            let description = format!("{vendor}: the request of a login through the facade");
            snapshot_settings_in(directory, description)
                .bind(|| insta::assert_yaml_snapshot!(name, request));
        }
    }
}

async fn normalize_every_refresh_sample(vendor: Vendor) {
    normalize_every_sample(
        vendor,
        refresh_operation(vendor),
        &Call::Refresh(grant(vendor)),
    )
    .await;
}

#[tokio::test]
async fn isolarcloud_samples() {
    normalize_every_refresh_sample(Vendor::ISolarCloud).await;
}

#[tokio::test]
async fn sugon_ac_samples() {
    normalize_every_refresh_sample(Vendor::SugonAc).await;
}

#[tokio::test]
async fn misa_cukcuk_samples() {
    normalize_every_refresh_sample(Vendor::MisaCukcuk).await;
}

#[tokio::test]
async fn wechat_open_samples() {
    normalize_every_refresh_sample(Vendor::WechatOpen).await;
}

#[tokio::test]
async fn ekuaibao_samples() {
    normalize_every_refresh_sample(Vendor::Ekuaibao).await;
}

#[tokio::test]
async fn every_login_sample() {
    for vendor in Vendor::ALL {
        for (operation, grant) in login_grants(vendor) {
            normalize_every_sample(vendor, operation, &Call::Login(grant)).await;
        }
    }
}

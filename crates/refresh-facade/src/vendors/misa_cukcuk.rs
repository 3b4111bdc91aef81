//! MISA CukCuk: failures come in the same envelope (`Success: false`, `ErrorType`); HTTP 401 means the token is
//! expired or invalid. The OpenPlatform login is signed (HMAC-SHA256 of its fields, keyed by the app's secret key)
//! and issues no refresh token: its token is obtained again, never refreshed.
#![cfg(feature = "misa-cukcuk")]

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use refresh_misa_cukcuk::error_codes::error_type;
use refresh_misa_cukcuk::operations::{LOGIN, REFRESH_TOKEN};
use refresh_misa_cukcuk::types::{
    BranchResult, GraphApiErrorType, LoginParam, LoginResult, LoginV2Result, RefreshParam,
};
use refresh_runtime::Secret;

use super::{Answer, Basis, Exchange};
use crate::config::{ConfigError, base_url, required};
use crate::error::{CodeKinds, ErrorKind::*, Redactor, RefreshError, Said};
use crate::expiry::ExpiryHint;
use crate::grant::{Grant, RefreshGrant};
use crate::token::{TokenSet, VendorExtras};
use crate::vendor::{RefreshWindow, Vendor};

const VENDOR: Vendor = Vendor::MisaCukcuk;

/// MISA documents no refresh-token lifetime.
pub(crate) const REFRESH_WINDOW: RefreshWindow =
    RefreshWindow::WhileRefreshTokenLives { lifetime: None };

/// What each documented code means for a caller. The codes are the v1 API's: the v2 page publishes none.
pub(crate) const CODE_KINDS: CodeKinds = CodeKinds {
    vendor: VENDOR,
    code_fields: refresh_misa_cukcuk::error_codes::ALL,
    operations: refresh_misa_cukcuk::operations::ALL,
    codes: &[
        (error_type::NULL_OR_EMPTY_PARAMETER, InvalidRequest),
        (error_type::COMPANY_CODE_NOT_FOUND, CredentialsRejected),
        (error_type::APP_ID_NOT_FOUND, CredentialsRejected),
        // Only the login is signed: a signature refused means a wrong secret key (or a clock far off).
        (error_type::INVALID_SIGNATURE, CredentialsRejected),
        (error_type::PAGE_SIZE_OVER_100, InvalidRequest),
        (error_type::INVALID_DATETIME, InvalidRequest),
        (error_type::CUKCUK_CONNECTION_LOST, Transient),
        (error_type::INTERNAL_ERROR, Transient),
        (error_type::SAME_REQUEST_IN_PROGRESS, Transient),
    ],
    statuses: &[(401, ReauthorizationRequired)],
    undocumented: InvalidRequest,
};

/// MISA CukCuk: the company (restaurant) code the tokens belong to.
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct MisaCukcukConfig {
    pub base_url: Option<String>,
    pub company_code: String,
}

impl MisaCukcukConfig {
    pub fn new(company_code: impl Into<String>) -> Self {
        MisaCukcukConfig {
            base_url: None,
            company_code: company_code.into(),
        }
    }
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

/// What MISA CukCuk says besides the tokens.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MisaCukcukExtras {
    pub app_id: Option<String>,
    /// The company (restaurant chain) the token is for, from the configuration.
    pub company_code: String,
    pub branches: Vec<BranchResult>,
    pub main_currency: Option<String>,
    pub request_timeout: Option<i32>,
}

#[derive(Clone, Debug)]
pub(crate) struct Adapter {
    client: refresh_misa_cukcuk::Client,
    config: MisaCukcukConfig,
}

impl Adapter {
    pub(crate) fn new(
        config: MisaCukcukConfig,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let base = base_url(
            VENDOR,
            config.base_url.as_deref(),
            refresh_misa_cukcuk::DEFAULT_BASE_URL,
        )?;
        required(VENDOR, "company_code", &config.company_code)?;
        Ok(Adapter {
            client: refresh_misa_cukcuk::Client::new_with_client(&base, http),
            config,
        })
    }

    pub(crate) async fn refresh(
        &self,
        grant: &RefreshGrant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(grant.secrets());
        let body = RefreshParam {
            company_code: self.config.company_code.clone(),
            refresh_token: grant.refresh_token.clone(),
        };
        let call = self.client.refresh_token().body(body).send();
        let exchange = Exchange {
            operation: &REFRESH_TOKEN,
            kinds: &CODE_KINDS,
            redactor: &redactor,
        };
        let extras = |data: Option<LoginV2Result>| {
            let data = data.unwrap_or_default();
            MisaCukcukExtras {
                app_id: data.app_id,
                company_code: self.config.company_code.clone(),
                branches: data.branchs,
                main_currency: data.main_currency,
                request_timeout: data.request_timeout,
            }
        };
        exchange
            .read(
                call,
                |status, envelope| {
                    if let Some(refusal) = refusal(
                        status,
                        envelope.success,
                        envelope.error_type,
                        envelope.error_message.as_deref(),
                        &redactor,
                    ) {
                        return Err(refusal);
                    }
                    let mut data = envelope.data.unwrap_or_default();
                    let (access_token, refresh_token) =
                        (data.access_token.take(), data.refresh_token.take());
                    let (token_type, expire_date) =
                        (data.token_type.take(), data.expire_date.take());
                    Ok(Answer {
                        status: Some(status),
                        access_token,
                        refresh_token,
                        token_type,
                        expiry: expire_date.map_or(ExpiryHint::Absent, ExpiryHint::Rfc3339),
                        extras: VendorExtras::MisaCukcuk(extras(Some(data))),
                        anomalies: Vec::new(),
                    })
                },
                || VendorExtras::MisaCukcuk(extras(None)),
            )
            .await?
            .into_token_set(VENDOR, grant, sent_at)
    }

    /// Logs in: signs `{AppID, Domain, LoginTime}` with the secret key and sends it with the signature. The
    /// answer's token cannot be refreshed, and its expiry is not stated.
    pub(crate) async fn obtain(
        &self,
        grant: &Grant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let Grant::MisaCukcukAppSignature {
            app_id,
            domain,
            secret_key,
        } = grant
        else {
            return Err(super::not_this_vendors(VENDOR, grant));
        };
        let redactor = Redactor::new(grant.secrets());
        let login_time = sent_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let body = LoginParam {
            signature_info: Secret::from(signature(app_id, domain, &login_time, secret_key)),
            app_id: app_id.clone(),
            domain: domain.clone(),
            login_time,
        };
        let call = self.client.login().body(body).send();
        let exchange = Exchange {
            operation: &LOGIN,
            kinds: &CODE_KINDS,
            redactor: &redactor,
        };
        let extras = |data: Option<&LoginResult>| MisaCukcukExtras {
            app_id: data.and_then(|d| d.app_id.clone()).or(Some(app_id.clone())),
            company_code: data
                .and_then(|d| d.company_code.clone())
                .filter(|code| !code.trim().is_empty())
                .unwrap_or_else(|| self.config.company_code.clone()),
            branches: Vec::new(),
            main_currency: None,
            request_timeout: None,
        };
        exchange
            .read(
                call,
                |status, envelope| {
                    if let Some(refusal) = refusal(
                        status,
                        envelope.success,
                        envelope.error_type,
                        envelope.error_message.as_deref(),
                        &redactor,
                    ) {
                        return Err(refusal);
                    }
                    let mut data = envelope.data.unwrap_or_default();
                    Ok(Answer {
                        status: Some(status),
                        access_token: data.access_token.take(),
                        refresh_token: None,
                        token_type: None,
                        expiry: ExpiryHint::Absent,
                        extras: VendorExtras::MisaCukcuk(extras(Some(&data))),
                        anomalies: Vec::new(),
                    })
                },
                || VendorExtras::MisaCukcuk(extras(None)),
            )
            .await?
            .into_token_set(VENDOR, Basis::Unrefreshable, sent_at)
    }
}

/// `SignatureInfo`: the lowercase hex HMAC-SHA256 of the compact JSON `{"AppID":…,"Domain":…,"LoginTime":…}` (in
/// that order, as JSON escapes them), keyed by the secret key's UTF-8 bytes.
fn signature(app_id: &str, domain: &str, login_time: &str, secret_key: &Secret) -> String {
    #[derive(serde::Serialize)]
    struct Signed<'a> {
        #[serde(rename = "AppID")]
        app_id: &'a str,
        #[serde(rename = "Domain")]
        domain: &'a str,
        #[serde(rename = "LoginTime")]
        login_time: &'a str,
    }
    let signed = Signed {
        app_id,
        domain,
        login_time,
    };
    // Serializing three strings cannot fail.
    let message = serde_json::to_vec(&signed).unwrap_or_default();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret_key.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(&message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The vendor's refusal, if the envelope says `Success: false`: its `ErrorType`'s kind, or, with none, the
/// undocumented kind.
fn refusal(
    status: u16,
    success: bool,
    error_type: Option<GraphApiErrorType>,
    message: Option<&str>,
    redactor: &Redactor<'_>,
) -> Option<RefreshError> {
    if success {
        return None;
    }
    let code = error_type
        .map(|t| t.to_string())
        .filter(|code| !error_type::FIELD.is_success(code));
    Some(match code {
        Some(code) => {
            let said = Said {
                status: Some(status),
                message,
                request_id: None,
                redactor,
            };
            CODE_KINDS.code_error(&error_type::FIELD, &code, &said)
        }
        None => {
            let detail = "the answer says `Success: false` and no `ErrorType` says why";
            RefreshError::new(VENDOR, CODE_KINDS.undocumented, detail)
                .with_status(status)
                .with_vendor_message(message, redactor)
        }
    })
}

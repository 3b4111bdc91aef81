//! Ekuaibao: refresh with the current access and refresh tokens in the query; the failure envelope
//! (`errorCode: 403`) may come with HTTP 200 or 403.
#![cfg(feature = "ekuaibao")]

use std::future::Future;

use chrono::{DateTime, Utc};
use progenitor_client::{Error as ClientError, ResponseValue};
use refresh_ekuaibao::error_codes::error_code;
use refresh_ekuaibao::operations::{GET_ACCESS_TOKEN, REFRESH_TOKEN, REFRESH_TOKEN_WITH_VALIDITY};
use refresh_ekuaibao::types::{AppCredentials, AuthEnvelope};
use refresh_runtime::Operation;

use super::{Answer, Basis, DocumentedError, Exchange};
use crate::config::{ConfigError, base_url, required};
use crate::error::{CodeKinds, ErrorKind::*, Redactor, RefreshError, Said};
use crate::expiry::ExpiryHint;
use crate::grant::{Grant, RefreshGrant};
use crate::token::{TokenSet, VendorExtras};
use crate::vendor::{RefreshWindow, Vendor};

const VENDOR: Vendor = Vendor::Ekuaibao;

/// "If accessToken has already expired it cannot be refreshed."
pub(crate) const REFRESH_WINDOW: RefreshWindow = RefreshWindow::UntilAccessTokenExpiry;

/// What each documented code means for a caller.
pub(crate) const CODE_KINDS: CodeKinds = CodeKinds {
    vendor: VENDOR,
    code_fields: refresh_ekuaibao::error_codes::ALL,
    operations: refresh_ekuaibao::operations::ALL,
    codes: &[(error_code::UNAUTHORIZED, ReauthorizationRequired)],
    // The documented 403 is the unauthorized envelope; without its code it means the same.
    statuses: &[(403, ReauthorizationRequired)],
    undocumented: InvalidRequest,
};

/// Ekuaibao: with `validity_days`, refreshes ask for that validity (`refreshToken/expireDate`); without, the
/// plain refresh (32 days). Either is capped by the company's licence.
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct EkuaibaoConfig {
    /// Defaults to the standalone host; DingTalk, WeCom and Feishu tenants have their own.
    pub base_url: Option<String>,
    pub validity_days: Option<u32>,
    /// The feature licence code the refreshes carry; the vendor says to pass 219904.
    #[serde(default = "EkuaibaoConfig::default_power_code")]
    pub power_code: String,
}

impl EkuaibaoConfig {
    /// The licence code the vendor's documentation says to pass.
    pub const DOCUMENTED_POWER_CODE: &'static str = "219904";

    pub fn new() -> Self {
        EkuaibaoConfig {
            base_url: None,
            validity_days: None,
            power_code: Self::default_power_code(),
        }
    }
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
    pub fn with_validity_days(mut self, days: u32) -> Self {
        self.validity_days = Some(days);
        self
    }
    fn default_power_code() -> String {
        Self::DOCUMENTED_POWER_CODE.to_owned()
    }
}

impl Default for EkuaibaoConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// What Ekuaibao says besides the tokens.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EkuaibaoExtras {
    /// The company id.
    pub corporation_id: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Adapter {
    client: refresh_ekuaibao::Client,
    config: EkuaibaoConfig,
}

impl Adapter {
    pub(crate) fn new(config: EkuaibaoConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        let base = base_url(
            VENDOR,
            config.base_url.as_deref(),
            refresh_ekuaibao::DEFAULT_BASE_URL,
        )?;
        required(VENDOR, "power_code", &config.power_code)?;
        Ok(Adapter {
            client: refresh_ekuaibao::Client::new_with_client(&base, http),
            config,
        })
    }

    pub(crate) async fn refresh(
        &self,
        grant: &RefreshGrant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(grant.secrets());
        let Some(access_token) = &grant.access_token else {
            let detail = "an Ekuaibao refresh needs the current access token too (RefreshGrant::with_access_token)";
            return Err(RefreshError::new(VENDOR, InvalidRequest, detail));
        };
        let (access, refresh) = (
            access_token.expose_secret(),
            grant.refresh_token.expose_secret(),
        );
        let power_code = &self.config.power_code;
        let answer = match self.config.validity_days {
            Some(days) => {
                let operation = &REFRESH_TOKEN_WITH_VALIDITY;
                let call = self
                    .client
                    .refresh_token_with_validity()
                    .expire_date(days.to_string())
                    .access_token(access)
                    .refresh_token(refresh)
                    .power_code(power_code)
                    .send();
                answer(operation, &redactor, call).await?
            }
            None => {
                let operation = &REFRESH_TOKEN;
                let call = self
                    .client
                    .refresh_token()
                    .access_token(access)
                    .refresh_token(refresh)
                    .power_code(power_code)
                    .send();
                answer(operation, &redactor, call).await?
            }
        };
        answer.into_token_set(VENDOR, grant, sent_at)
    }

    /// The login (`getAccessToken`): the same envelope as a refresh.
    pub(crate) async fn obtain(
        &self,
        grant: &Grant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let Grant::EkuaibaoAppCredentials {
            app_key,
            app_security,
        } = grant
        else {
            return Err(super::not_this_vendors(VENDOR, grant));
        };
        let redactor = Redactor::new(grant.secrets());
        let body = AppCredentials {
            app_key: app_key.clone(),
            app_security: app_security.clone(),
        };
        let call = self.client.get_access_token().body(body).send();
        // "Unauthorized" means an expired access token to a refresh; a login presents no token, only the app's
        // credentials, so there it is they that were refused.
        let refused = |error: RefreshError| match error.kind() {
            ReauthorizationRequired => error.with_kind(
                CredentialsRejected,
                "unauthorized (未授权) on a login: the appKey or appSecurity was refused",
            ),
            _ => error,
        };
        answer(&GET_ACCESS_TOKEN, &redactor, call)
            .await
            .and_then(|answer| answer.into_token_set(VENDOR, Basis::Login, sent_at))
            .map_err(refused)
    }
}

/// Sends a call of `operation` and reads the envelope that refreshes and logins answer with.
async fn answer<E: DocumentedError>(
    operation: &'static Operation,
    redactor: &Redactor<'_>,
    call: impl Future<Output = Result<ResponseValue<AuthEnvelope>, ClientError<E>>>,
) -> Result<Answer, RefreshError> {
    let exchange = Exchange {
        operation,
        kinds: &CODE_KINDS,
        redactor,
    };
    let read = |status, envelope| read(status, envelope, &exchange);
    exchange.read(call, read, unread).await
}

/// The extras of an answer read from its raw body: none.
fn unread() -> VendorExtras {
    VendorExtras::Ekuaibao(EkuaibaoExtras {
        corporation_id: None,
    })
}

/// Reads the envelope that refreshes and logins answer with.
fn read(
    status: u16,
    envelope: AuthEnvelope,
    exchange: &Exchange<'_>,
) -> Result<Answer, RefreshError> {
    let nested_failure = envelope
        .value
        .as_ref()
        .is_some_and(|v| v.error_code.is_some());
    if envelope.error_code.is_some() || nested_failure {
        return Err(envelope.into_error(status, exchange));
    }
    let tokens = envelope.value.unwrap_or_default();
    Ok(Answer {
        status: Some(status),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_type: None,
        expiry: tokens
            .expire_time
            .map_or(ExpiryHint::Absent, ExpiryHint::EpochMillis),
        extras: VendorExtras::Ekuaibao(EkuaibaoExtras {
            corporation_id: tokens.corporation_id,
        }),
        anomalies: Vec::new(),
    })
}

/// The failure envelope, whichever HTTP status it came with (200 or the documented 403): its code, or else
/// what the status documents.
impl DocumentedError for AuthEnvelope {
    fn into_error(mut self, status: u16, exchange: &Exchange<'_>) -> RefreshError {
        if self.error_code.is_none()
            && let Some(nested) = self.value.as_mut().filter(|v| v.error_code.is_some())
        {
            // The failure nested in the success wrapper, as the vendor's auth pages show it.
            self.error_code = nested.error_code.take();
            self.error_message = nested.error_message.take().or(self.error_message);
        }
        let message = self.error_message.as_deref();
        match self.error_code {
            Some(code) => {
                let said = Said {
                    status: Some(status),
                    message,
                    request_id: None,
                    redactor: exchange.redactor,
                };
                let error = CODE_KINDS.code_error(&error_code::FIELD, &code.to_string(), &said);
                if error_code::FIELD.find(&code.to_string()).is_none() && (500..600).contains(&code)
                {
                    // The vendor's codes are HTTP statuses (its 403 "unauthorized" comes with HTTP 403): an
                    // undocumented 5xx code is its server failing, which passes.
                    return error.with_kind(
                        Transient,
                        format!(
                            "errorCode {code}, a server-side failure the vendor does not document"
                        ),
                    );
                }
                error
            }
            None => CODE_KINDS
                .status_error(exchange.operation, status)
                .with_vendor_message(message, exchange.redactor),
        }
    }
}

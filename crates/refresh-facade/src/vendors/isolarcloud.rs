//! Sungrow iSolarCloud: failures come with HTTP 200, in `result_data.code` or (gateway) `result_code`; the
//! envelope's `req_serial_num` is the request id.
#![cfg(feature = "isolarcloud")]

use std::time::Duration;

use std::future::Future;

use chrono::{DateTime, Utc};
use progenitor_client::{Error as ClientError, ResponseValue};
use refresh_isolarcloud::error_codes::{result_code, result_data_code};
use refresh_isolarcloud::operations::{EXCHANGE_TOKEN, REFRESH_TOKEN};
use refresh_isolarcloud::types::{RefreshTokenRequest, Seconds, TokenEnvelope, TokenRequest};
use refresh_runtime::{Operation, Secret};

use super::{Answer, Basis, DocumentedError, Exchange};
use crate::config::{ConfigError, base_url, required};
use crate::error::{CodeKinds, ErrorKind::*, Redactor, RefreshError, Said};
use crate::expiry::ExpiryHint;
use crate::grant::{Grant, RefreshGrant};
use crate::token::{TokenSet, VendorExtras};
use crate::vendor::{RefreshWindow, Vendor};

const VENDOR: Vendor = Vendor::ISolarCloud;

/// Refresh tokens live 30 days (the vendor's context pages).
pub(crate) const REFRESH_WINDOW: RefreshWindow = RefreshWindow::WhileRefreshTokenLives {
    lifetime: Some(Duration::from_secs(30 * 24 * 60 * 60)),
};

/// What each documented code means for a caller.
pub(crate) const CODE_KINDS: CodeKinds = CodeKinds {
    vendor: VENDOR,
    code_fields: refresh_isolarcloud::error_codes::ALL,
    operations: refresh_isolarcloud::operations::ALL,
    codes: &[
        (
            result_data_code::NO_AUTHORIZATION_INFORMATION,
            ReauthorizationRequired,
        ),
        (
            result_data_code::AUTHORIZATION_SERVER_REFRESH_FAILED,
            Transient,
        ),
        (
            result_data_code::REFRESH_TOKEN_EXPIRED,
            ReauthorizationRequired,
        ),
        (result_data_code::INVALID_REQUEST, InvalidRequest),
        (
            result_data_code::INVALID_REFRESH_TOKEN,
            ReauthorizationRequired,
        ),
        (
            result_code::TOKEN_INVALID_OR_EXPIRED,
            ReauthorizationRequired,
        ),
        (result_code::MISSING_ACCESS_KEY, CredentialsRejected),
        (result_code::ILLEGAL_ACCESS_KEY, CredentialsRejected),
        (result_code::APP_KEY_AND_KEY_MISMATCH, CredentialsRejected),
        (result_code::UNAUTHORIZED, CredentialsRejected),
        (result_code::CALL_LIMIT_E998, Transient),
        (result_code::CALL_LIMIT_E999, Transient),
        // The authorization code is used up or wrong: only a new authorization in the browser helps.
        (result_code::BAD_CODE, ReauthorizationRequired),
        (result_code::EXCHANGE_UNAUTHORIZED, CredentialsRejected),
        (result_code::INVALID_CLIENT, CredentialsRejected),
        (result_code::REDIRECT_MISMATCH, CredentialsRejected),
        (result_code::UNSUPPORTED_GRANT, InvalidRequest),
    ],
    statuses: &[],
    undocumented: InvalidRequest,
};

/// Sungrow iSolarCloud: the app key (sent as `appkey`) and the app's secret key (sent as `x-access-key`).
#[derive(Clone, Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct ISolarCloudConfig {
    /// Defaults to the vendor's first gateway (China); see `refresh_isolarcloud::SERVERS` for the others.
    pub base_url: Option<String>,
    pub app_key: String,
    pub access_key: Secret,
}

impl ISolarCloudConfig {
    pub fn new(app_key: impl Into<String>, access_key: impl Into<Secret>) -> Self {
        ISolarCloudConfig {
            base_url: None,
            app_key: app_key.into(),
            access_key: access_key.into(),
        }
    }
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

/// What iSolarCloud says besides the tokens.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ISolarCloudExtras {
    /// The vendor's request sequence number, for support requests.
    pub req_serial_num: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Adapter {
    client: refresh_isolarcloud::Client,
    config: ISolarCloudConfig,
}

impl Adapter {
    pub(crate) fn new(
        config: ISolarCloudConfig,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let base = base_url(
            VENDOR,
            config.base_url.as_deref(),
            refresh_isolarcloud::DEFAULT_BASE_URL,
        )?;
        required(VENDOR, "app_key", &config.app_key)?;
        required(VENDOR, "access_key", config.access_key.expose_secret())?;
        Ok(Adapter {
            client: refresh_isolarcloud::Client::new_with_client(&base, http),
            config,
        })
    }

    pub(crate) async fn refresh(
        &self,
        grant: &RefreshGrant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(grant.secrets().chain([self.access_key()]));
        let body = RefreshTokenRequest {
            refresh_token: grant.refresh_token.clone(),
            appkey: Some(self.config.app_key.clone()),
        };
        let call = self
            .client
            .refresh_token()
            .x_access_key(self.access_key())
            .body(body)
            .send();
        answer(&REFRESH_TOKEN, &redactor, call)
            .await?
            .into_token_set(VENDOR, grant, sent_at)
    }

    /// The authorization code exchange (`exchange_token`): the same envelope as a refresh.
    pub(crate) async fn obtain(
        &self,
        grant: &Grant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let Grant::ISolarCloudAuthorizationCode { code, redirect_uri } = grant else {
            return Err(super::not_this_vendors(VENDOR, grant));
        };
        let redactor = Redactor::new(grant.secrets().into_iter().chain([self.access_key()]));
        let body = TokenRequest {
            appkey: self.config.app_key.clone(),
            grant_type: "authorization_code".to_owned(),
            code: code.clone(),
            redirect_uri: redirect_uri.clone(),
        };
        let call = self
            .client
            .exchange_token()
            .x_access_key(self.access_key())
            .body(body)
            .send();
        answer(&EXCHANGE_TOKEN, &redactor, call)
            .await?
            .into_token_set(VENDOR, Basis::Login, sent_at)
    }

    fn access_key(&self) -> &str {
        self.config.access_key.expose_secret()
    }
}

/// Sends a call of `operation` and reads the token envelope that refreshes and code exchanges answer with.
async fn answer<E: DocumentedError>(
    operation: &'static Operation,
    redactor: &Redactor<'_>,
    call: impl Future<Output = Result<ResponseValue<TokenEnvelope>, ClientError<E>>>,
) -> Result<Answer, RefreshError> {
    let exchange = Exchange {
        operation,
        kinds: &CODE_KINDS,
        redactor,
    };
    exchange
        .read(
            call,
            |status, envelope| read(status, envelope, redactor),
            unread,
        )
        .await
}

/// The extras of an answer read from its raw body: none.
fn unread() -> VendorExtras {
    VendorExtras::ISolarCloud(ISolarCloudExtras {
        req_serial_num: None,
    })
}

/// Reads the token envelope that refreshes and code exchanges answer with.
fn read(
    status: u16,
    envelope: TokenEnvelope,
    redactor: &Redactor<'_>,
) -> Result<Answer, RefreshError> {
    let said = Said {
        status: Some(status),
        // The envelope says "success" even when result_data.code says otherwise: that is no message about
        // the failure, whose documented meaning the error's detail carries.
        message: envelope
            .result_msg
            .as_deref()
            .filter(|message| !message.trim().eq_ignore_ascii_case("success")),
        request_id: envelope.req_serial_num.as_deref(),
        redactor,
    };
    let gateway_code = envelope.result_code.as_deref();
    CODE_KINDS.check(&result_code::FIELD, gateway_code, &said)?;
    let data = envelope.result_data.unwrap_or_default();
    CODE_KINDS.check(&result_data_code::FIELD, data.code.as_deref(), &said)?;
    // Tokens in result_data, as documented; at the top level, as one widely used client reads them.
    let expires_in = data.expires_in.or(envelope.expires_in);
    Ok(Answer {
        status: Some(status),
        access_token: data.access_token.or(envelope.access_token),
        refresh_token: data.refresh_token.or(envelope.refresh_token),
        token_type: data.token_type.or(envelope.token_type),
        expiry: match expires_in {
            Some(Seconds::Int64(seconds)) => ExpiryHint::Seconds(seconds),
            Some(Seconds::String(text)) => ExpiryHint::SecondsText(text),
            None => ExpiryHint::Absent,
        },
        extras: VendorExtras::ISolarCloud(ISolarCloudExtras {
            req_serial_num: envelope.req_serial_num,
        }),
        anomalies: Vec::new(),
    })
}

//! Ekuaibao: refresh with the current access and refresh tokens in the query; the failure envelope
//! (`errorCode: 403`) may come with HTTP 200 or 403.

use chrono::Utc;
use refresh_ekuaibao::Secret;
use refresh_ekuaibao::types::AuthEnvelope;

use super::{Answer, send};
use crate::config::{ConfigError, EkuaibaoConfig, base_url, required};
use crate::error::{CodeTable, ErrorKind::*, Redactor, RefreshError};
use crate::expiry::ExpiryHint;
use crate::grant::RefreshGrant;
use crate::token::{EkuaibaoExtras, TokenSet, VendorExtras};
use crate::vendor::Vendor;

const VENDOR: Vendor = Vendor::Ekuaibao;

const ERROR_CODES: CodeTable = CodeTable {
    vendor: VENDOR,
    field: "errorCode",
    codes: &[(
        "403",
        ReauthorizationRequired,
        "unauthorized (未授权): the access token has expired, and only a valid one can be refreshed",
    )],
    undocumented: InvalidRequest,
};

pub(crate) const CODE_TABLES: &[CodeTable] = &[ERROR_CODES];

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

    pub(crate) async fn refresh(&self, grant: &RefreshGrant) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(grant.secrets());
        let Some(access_token) = &grant.access_token else {
            let detail = "an Ekuaibao refresh needs the current access token too (RefreshGrant::with_access_token)";
            return Err(RefreshError::new(VENDOR, InvalidRequest, detail));
        };
        let (access, refresh) = (
            access_token.expose_secret(),
            grant.refresh_token.expose_secret(),
        );
        let sent_at = Utc::now();
        let documented = |status, envelope: AuthEnvelope| failure(&envelope, status, &redactor);
        let power_code = &self.config.power_code;
        let (status, envelope) = match self.config.validity_days {
            Some(days) => {
                let call = self
                    .client
                    .refresh_token_with_validity()
                    .expire_date(days.to_string());
                let call = call
                    .access_token(access)
                    .refresh_token(refresh)
                    .power_code(power_code)
                    .send();
                let decoded = refresh_ekuaibao::decoded_statuses("refresh_token_with_validity");
                send(VENDOR, decoded, &redactor, call, documented).await?
            }
            None => {
                let call = self.client.refresh_token();
                let call = call
                    .access_token(access)
                    .refresh_token(refresh)
                    .power_code(power_code)
                    .send();
                let decoded = refresh_ekuaibao::decoded_statuses("refresh_token");
                send(VENDOR, decoded, &redactor, call, documented).await?
            }
        };

        if envelope.error_code.is_some() {
            return Err(failure(&envelope, status, &redactor));
        }
        let tokens = envelope.value.unwrap_or_default();
        Answer {
            access_token: tokens.access_token.map(Secret::into_exposed),
            refresh_token: tokens.refresh_token.map(Secret::into_exposed),
            token_type: None,
            expiry: tokens
                .expire_time
                .map_or(ExpiryHint::Absent, ExpiryHint::EpochMillis),
            extras: VendorExtras::Ekuaibao(EkuaibaoExtras {
                corporation_id: tokens.corporation_id,
            }),
        }
        .into_token_set(VENDOR, grant, sent_at, status)
    }
}

/// The failure envelope, whichever HTTP status it came with.
fn failure(envelope: &AuthEnvelope, status: u16, redactor: &Redactor<'_>) -> RefreshError {
    let code = envelope
        .error_code
        .map_or_else(|| status.to_string(), |code| code.to_string());
    ERROR_CODES.error(&code, envelope.error_message.as_deref(), status, redactor)
}

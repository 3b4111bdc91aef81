//! MISA CukCuk: failures come in the same envelope (`Success: false`, `ErrorType`); HTTP 401 means the token is
//! expired or invalid.

use chrono::Utc;
use refresh_misa_cukcuk::Secret;
use refresh_misa_cukcuk::types::RefreshParam;

use super::{Answer, send};
use crate::config::{ConfigError, MisaCukcukConfig, base_url, required};
use crate::error::{CodeTable, ErrorKind::*, Redactor, RefreshError};
use crate::expiry::ExpiryHint;
use crate::grant::RefreshGrant;
use crate::token::{MisaCukcukExtras, TokenSet, VendorExtras};
use crate::vendor::Vendor;

const VENDOR: Vendor = Vendor::MisaCukcuk;

/// The v2 values are not published; these are the v1 API's, which the v2 envelope shares.
const ERROR_TYPES: CodeTable = CodeTable {
    vendor: VENDOR,
    field: "ErrorType",
    codes: &[
        ("1", InvalidRequest, "null or empty parameter"),
        (
            "2",
            CredentialsRejected,
            "restaurant (company) code does not exist",
        ),
        ("3", CredentialsRejected, "AppID does not exist"),
        (
            "4",
            ReauthorizationRequired,
            "invalid or timed-out signature",
        ),
        ("5", InvalidRequest, "page size over 100"),
        ("6", InvalidRequest, "invalid datetime"),
        ("7", Transient, "CukCuk connection lost"),
        ("100", Transient, "internal Graph API error"),
        (
            "102",
            Transient,
            "a request of the same type is already in progress",
        ),
    ],
    undocumented: InvalidRequest,
};

const HTTP_STATUSES: CodeTable = CodeTable {
    vendor: VENDOR,
    field: "HTTP status",
    codes: &[(
        "401",
        ReauthorizationRequired,
        "the token is expired or invalid",
    )],
    undocumented: MalformedResponse,
};

pub(crate) const CODE_TABLES: &[CodeTable] = &[ERROR_TYPES, HTTP_STATUSES];

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

    pub(crate) async fn refresh(&self, grant: &RefreshGrant) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(grant.secrets());
        let body = RefreshParam {
            company_code: self.config.company_code.clone(),
            refresh_token: grant.refresh_token.expose_secret().into(),
        };
        let sent_at = Utc::now();
        let call = self.client.refresh_token().body(body).send();
        let decoded = refresh_misa_cukcuk::decoded_statuses("refresh_token");
        let (status, envelope) = send(VENDOR, decoded, &redactor, call, |status, ()| {
            HTTP_STATUSES.error(&status.to_string(), None, status, &redactor)
        })
        .await?;

        if !envelope.success {
            let code = envelope
                .error_type
                .map_or_else(|| "(none)".to_owned(), |t| t.to_string());
            return Err(ERROR_TYPES.error(
                &code,
                envelope.error_message.as_deref(),
                status,
                &redactor,
            ));
        }
        let data = envelope.data.unwrap_or_default();
        Answer {
            access_token: data.access_token.map(Secret::into_exposed),
            refresh_token: data.refresh_token.map(Secret::into_exposed),
            token_type: data.token_type,
            expiry: data
                .expire_date
                .as_deref()
                .map_or(ExpiryHint::Absent, ExpiryHint::Rfc3339),
            extras: VendorExtras::MisaCukcuk(MisaCukcukExtras {
                app_id: data.app_id,
                company_code: self.config.company_code.clone(),
                branches: data.branchs,
                main_currency: data.main_currency,
                request_timeout: data.request_timeout,
            }),
        }
        .into_token_set(VENDOR, grant, sent_at, status)
    }
}

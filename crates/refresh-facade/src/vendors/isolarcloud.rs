//! Sungrow iSolarCloud: failures come with HTTP 200, in `result_data.code` or (gateway) `result_code`.

use chrono::Utc;
use refresh_isolarcloud::Secret;
use refresh_isolarcloud::types::{RefreshTokenRequest, Seconds};

use super::{Answer, no_documented_error, send};
use crate::config::{ConfigError, ISolarCloudConfig, base_url, required};
use crate::error::{CodeTable, ErrorKind::*, Redactor, RefreshError};
use crate::expiry::ExpiryHint;
use crate::grant::RefreshGrant;
use crate::token::{ISolarCloudExtras, TokenSet, VendorExtras};
use crate::vendor::Vendor;

const VENDOR: Vendor = Vendor::ISolarCloud;

const RESULT_CODES: CodeTable = CodeTable {
    vendor: VENDOR,
    field: "result_data.code",
    codes: &[
        ("2", ReauthorizationRequired, "no authorization information"),
        ("-1", Transient, "authorization server token refresh failed"),
        ("-2", ReauthorizationRequired, "refresh_token expired"),
        ("4", InvalidRequest, "invalid request"),
        ("5", ReauthorizationRequired, "invalid refresh token"),
    ],
    undocumented: InvalidRequest,
};

const GATEWAY_CODES: CodeTable = CodeTable {
    vendor: VENDOR,
    field: "result_code",
    codes: &[
        (
            "E00003",
            ReauthorizationRequired,
            "token invalid or expired",
        ),
        ("E911", CredentialsRejected, "missing x-access-key"),
        ("E912", CredentialsRejected, "illegal x-access-key"),
        ("E914", CredentialsRejected, "appkey and key do not match"),
        ("E900", CredentialsRejected, "unauthorized"),
        ("E998", Transient, "call limit reached"),
        ("E999", Transient, "call limit reached"),
    ],
    undocumented: InvalidRequest,
};

pub(crate) const CODE_TABLES: &[CodeTable] = &[RESULT_CODES, GATEWAY_CODES];

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

    pub(crate) async fn refresh(&self, grant: &RefreshGrant) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(
            grant
                .secrets()
                .chain([self.config.access_key.expose_secret()]),
        );
        let body = RefreshTokenRequest {
            refresh_token: grant.refresh_token.expose_secret().into(),
            appkey: Some(self.config.app_key.clone()),
        };
        let sent_at = Utc::now();
        let call = self
            .client
            .refresh_token()
            .x_access_key(self.config.access_key.expose_secret())
            .body(body)
            .send();
        let decoded = refresh_isolarcloud::decoded_statuses("refresh_token");
        let (status, envelope) = send(
            VENDOR,
            decoded,
            &redactor,
            call,
            no_documented_error(VENDOR),
        )
        .await?;

        if let Some(code) = envelope.result_code.as_deref().filter(|code| *code != "1") {
            return Err(GATEWAY_CODES.error(
                code,
                envelope.result_msg.as_deref(),
                status,
                &redactor,
            ));
        }
        let data = envelope.result_data.unwrap_or_default();
        if let Some(code) = data.code.as_deref().filter(|code| *code != "1") {
            return Err(RESULT_CODES.error(
                code,
                envelope.result_msg.as_deref(),
                status,
                &redactor,
            ));
        }
        // Tokens in result_data, as documented; at the top level, as one widely used client reads them.
        let expires_in = data.expires_in.as_ref().or(envelope.expires_in.as_ref());
        Answer {
            access_token: data
                .access_token
                .or(envelope.access_token)
                .map(Secret::into_exposed),
            refresh_token: data
                .refresh_token
                .or(envelope.refresh_token)
                .map(Secret::into_exposed),
            token_type: data.token_type.or(envelope.token_type),
            expiry: match expires_in {
                Some(Seconds::Int64(seconds)) => ExpiryHint::Seconds(*seconds),
                Some(Seconds::String(text)) => ExpiryHint::SecondsText(text),
                None => ExpiryHint::Absent,
            },
            extras: VendorExtras::ISolarCloud(ISolarCloudExtras {
                req_serial_num: envelope.req_serial_num,
            }),
        }
        .into_token_set(VENDOR, grant, sent_at, status)
    }
}

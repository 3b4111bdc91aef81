//! One adapter per vendor: it calls the vendor's generated client and says what the answer means. Everything
//! the adapters share (turning an answer into a [`TokenSet`], error mapping) lives here and in `error.rs`.

#[cfg(feature = "ekuaibao")]
pub(crate) mod ekuaibao;
#[cfg(feature = "isolarcloud")]
pub(crate) mod isolarcloud;
#[cfg(feature = "misa-cukcuk")]
pub(crate) mod misa_cukcuk;
#[cfg(feature = "sugon-ac")]
pub(crate) mod sugon_ac;
#[cfg(feature = "wechat-open")]
pub(crate) mod wechat_open;

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};
use progenitor_client::{Error as ClientError, ResponseValue};

use crate::error::{
    CodeTable, DocumentedCode, ErrorKind, Redactor, RefreshError, from_client_error,
};
use crate::expiry::{ExpiryHint, resolve};
use crate::grant::RefreshGrant;
use crate::secret::SecretToken;
use crate::token::{Rotation, TokenSet, VendorExtras};
use crate::vendor::{RefreshWindow, Vendor};

/// Awaits a generated client's call: the answer's HTTP status and decoded body, or the [`RefreshError`] for
/// anything else. `decoded` are the statuses the operation decodes (the generated `decoded_statuses`);
/// `documented_error` reads the answers the spec documents for error statuses.
pub(crate) async fn send<T, E>(
    vendor: Vendor,
    decoded: &[u16],
    redactor: &Redactor<'_>,
    call: impl Future<Output = Result<ResponseValue<T>, ClientError<E>>>,
    documented_error: impl FnOnce(u16, E) -> RefreshError,
) -> Result<(u16, T), RefreshError> {
    match call.await {
        Ok(answer) => Ok((answer.status().as_u16(), answer.into_inner())),
        Err(error) => Err(from_client_error(
            vendor,
            decoded,
            error,
            redactor,
            documented_error,
        )),
    }
}

/// For operations whose spec documents no error answer: progenitor then never produces one.
#[cfg(any(feature = "isolarcloud", feature = "sugon-ac", feature = "wechat-open"))]
pub(crate) fn no_documented_error(vendor: Vendor) -> impl FnOnce(u16, ()) -> RefreshError {
    move |status, ()| {
        RefreshError::new(
            vendor,
            ErrorKind::MalformedResponse,
            "an error answer the spec does not document",
        )
        .with_status(status)
    }
}

/// What a vendor answered, before normalization.
pub(crate) struct Answer<'a> {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub token_type: Option<String>,
    pub expiry: ExpiryHint<'a>,
    pub extras: VendorExtras,
}

impl Answer<'_> {
    /// The normalized tokens: expiry resolved from when the request was sent, the refresh token carried over
    /// when the vendor sent none, the vendor's refresh window applied.
    pub(crate) fn into_token_set(
        self,
        vendor: Vendor,
        grant: &RefreshGrant,
        sent_at: DateTime<Utc>,
        status: u16,
    ) -> Result<TokenSet, RefreshError> {
        let access_token = match self.access_token {
            Some(token) if !token.trim().is_empty() => SecretToken::new(token),
            _ => {
                let detail = "the answer carries neither an access token nor an error code";
                return Err(
                    RefreshError::new(vendor, ErrorKind::MalformedResponse, detail)
                        .with_status(status),
                );
            }
        };
        let (refresh_token, rotation) = match self.refresh_token.filter(|t| !t.trim().is_empty()) {
            Some(new) if new == grant.refresh_token.expose_secret() => {
                (SecretToken::new(new), Rotation::Unchanged)
            }
            Some(new) => (SecretToken::new(new), Rotation::Rotated),
            None => (grant.refresh_token.clone(), Rotation::CarriedOver),
        };
        let (expires_at, expiry_source) = resolve(self.expiry, sent_at);
        let refreshable_until = match vendor.refresh_window() {
            RefreshWindow::UntilAccessTokenExpiry => Some(expires_at),
            RefreshWindow::AfterAccessTokenExpiry { grace } => TimeDelta::from_std(grace)
                .ok()
                .and_then(|grace| expires_at.checked_add_signed(grace)),
            RefreshWindow::WhileRefreshTokenLives {
                lifetime: Some(lifetime),
            } if rotation == Rotation::Rotated => TimeDelta::from_std(lifetime)
                .ok()
                .and_then(|lifetime| sent_at.checked_add_signed(lifetime)),
            RefreshWindow::WhileRefreshTokenLives { lifetime: Some(_) } => grant.refreshable_until,
            RefreshWindow::WhileRefreshTokenLives { lifetime: None } => None,
        };
        Ok(TokenSet {
            vendor,
            access_token,
            refresh_token,
            token_type: self.token_type,
            expires_at,
            expiry_source,
            obtained_at: sent_at,
            refreshable_until,
            rotation,
            extras: self.extras,
        })
    }
}

/// Every documented error code of every vendor compiled in, with the kind it maps to.
pub fn documented_error_codes() -> Vec<DocumentedCode> {
    let tables: Vec<&[CodeTable]> = vec![
        #[cfg(feature = "isolarcloud")]
        isolarcloud::CODE_TABLES,
        #[cfg(feature = "sugon-ac")]
        sugon_ac::CODE_TABLES,
        #[cfg(feature = "misa-cukcuk")]
        misa_cukcuk::CODE_TABLES,
        #[cfg(feature = "wechat-open")]
        wechat_open::CODE_TABLES,
        #[cfg(feature = "ekuaibao")]
        ekuaibao::CODE_TABLES,
    ];
    tables
        .into_iter()
        .flatten()
        .flat_map(CodeTable::documented)
        .collect()
}

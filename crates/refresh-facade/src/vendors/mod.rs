//! One file per vendor: its configuration, extras, refresh window, kind map and adapter. What the adapters
//! share (sending a generated client's call, turning an answer into a [`TokenSet`]) lives here.

pub(crate) mod salvage;

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};
use progenitor_client::{Error as ClientError, ResponseValue};
use refresh_runtime::hooks::UndecodableErrorAnswer;
use refresh_runtime::{Operation, Secret};

use crate::error::{CodeKinds, ErrorKind, Redactor, RefreshError, from_client_error};
use crate::expiry::{ExpiryHint, resolve};
use crate::grant::RefreshGrant;
use crate::token::{Rotation, TokenSet, VendorExtras};
use crate::vendor::{RefreshWindow, Vendor};

// Each vendor's file says which feature compiles it (`#![cfg(feature = …)]`).
pub(crate) mod ekuaibao;
pub(crate) mod isolarcloud;
pub(crate) mod misa_cukcuk;
pub(crate) mod sugon_ac;
pub(crate) mod wechat_open;

macro_rules! vendor_modules {
    ([] $($(#[$doc:meta])* $variant:ident $name:literal $module:ident $config:ident $extras:ident,)*) => {
        /// Every compiled vendor's kind map.
        pub(crate) const CODE_KINDS: &[&CodeKinds] = &[$(
            #[cfg(feature = $name)]
            &$module::CODE_KINDS,
        )*];

        /// Every compiled vendor's refresh window.
        const REFRESH_WINDOWS: &[(Vendor, RefreshWindow)] = &[$(
            #[cfg(feature = $name)]
            (Vendor::$variant, $module::REFRESH_WINDOW),
        )*];
    };
}

for_each_vendor!(vendor_modules);

/// The refresh window of `vendor`, if its feature is compiled in.
pub(crate) fn refresh_window(vendor: Vendor) -> Option<RefreshWindow> {
    REFRESH_WINDOWS
        .iter()
        .find(|(v, _)| *v == vendor)
        .map(|(_, window)| *window)
}

/// One call of a vendor's operation: what the shared send step needs besides the call itself.
pub(crate) struct Exchange<'a> {
    pub operation: &'static Operation,
    /// The vendor's kind map (it names the vendor and the fields that carry its codes).
    pub kinds: &'static CodeKinds,
    pub redactor: &'a Redactor<'a>,
}

/// How an answer the spec documents for an error status reads (progenitor's `ErrorResponse` body).
pub(crate) trait DocumentedError {
    fn into_error(self, status: u16, exchange: &Exchange<'_>) -> RefreshError;
}

/// A documented error status without a body: the kind map's `statuses` and the spec's description.
impl DocumentedError for () {
    fn into_error(self, status: u16, exchange: &Exchange<'_>) -> RefreshError {
        exchange.kinds.status_error(exchange.operation, status)
    }
}

impl Exchange<'_> {
    /// Awaits a generated client's call of the operation, and reads its answer into the one [`Answer`] shape: a
    /// body the generated type decoded, with `read` (the vendor's reading, which may find the vendor's error in
    /// it); a success answer whose typed decode failed, from its raw body (`salvage.rs`), with `unread` as its
    /// extras.
    pub(crate) async fn read<T, E: DocumentedError>(
        &self,
        call: impl Future<Output = Result<ResponseValue<T>, ClientError<E>>>,
        read: impl FnOnce(u16, T) -> Result<Answer, RefreshError>,
        unread: impl FnOnce() -> VendorExtras,
    ) -> Result<Answer, RefreshError> {
        match call.await {
            Ok(answer) => {
                crate::vendor_clock::note(answer.headers());
                read(answer.status().as_u16(), answer.into_inner())
            }
            Err(ClientError::InvalidResponsePayload(body, decode)) => {
                salvage::salvage(self, &body, &decode, unread())
            }
            Err(ClientError::Custom(message)) => {
                match UndecodableErrorAnswer::from_message(&message) {
                    // A documented error status whose body is not JSON (a gateway's text or HTML page): its
                    // status says what happened, as the spec documents it.
                    Some(answer) => {
                        let error = self.kinds.status_error(self.operation, answer.status);
                        let detail =
                            format!("{} (its body is not the documented JSON)", error.detail());
                        Err(error.with_detail(detail))
                    }
                    None => Err(self.other_error(ClientError::<E>::Custom(message))),
                }
            }
            Err(error) => Err(self.other_error(error)),
        }
    }

    /// What `from_client_error` makes of a failed call.
    fn other_error<E: DocumentedError>(&self, error: ClientError<E>) -> RefreshError {
        from_client_error(
            self.kinds.vendor,
            self.operation,
            error,
            self.redactor,
            |status, body| body.into_error(status, self),
        )
    }
}

/// The error for a login `grant` of another vendor than the adapter's (the refresher checks first; this keeps
/// each adapter total).
pub(crate) fn not_this_vendors(vendor: Vendor, grant: &crate::grant::Grant) -> RefreshError {
    let detail = format!(
        "the grant is for {}, the refresher for {vendor}",
        grant.vendor()
    );
    RefreshError::new(vendor, ErrorKind::Unsupported, detail)
}

/// What the tokens of an answer replace, which decides what a missing refresh token means.
#[derive(Clone, Copy)]
pub(crate) enum Basis<'a> {
    /// A refresh with this grant: a refresh token the answer lacks is carried over from it.
    Refresh(&'a RefreshGrant),
    /// A login: the answer's tokens are the first; it must carry a refresh token.
    Login,
    /// A credential obtained again rather than refreshed (WeChat's component access token, MISA CukCuk's login).
    Unrefreshable,
}

impl<'a> From<&'a RefreshGrant> for Basis<'a> {
    fn from(grant: &'a RefreshGrant) -> Self {
        Basis::Refresh(grant)
    }
}

/// What a vendor answered, before normalization: read from the typed body or salvaged from the raw one.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The answer's HTTP status (`None`: a salvaged answer of an operation that decodes several).
    pub status: Option<u16>,
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub token_type: Option<String>,
    pub expiry: ExpiryHint,
    pub extras: VendorExtras,
    /// What in the answer did not match its documentation (empty for a typed answer).
    pub anomalies: Vec<crate::Anomaly>,
}

impl Answer {
    /// The normalized tokens: expiry resolved from when the request was sent, the refresh token carried over
    /// when the vendor sent none, the vendor's refresh window applied.
    pub(crate) fn into_token_set<'g>(
        self,
        vendor: Vendor,
        basis: impl Into<Basis<'g>>,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let status = self.status;
        let basis = basis.into();
        let malformed = |detail: &str| {
            RefreshError::new(vendor, ErrorKind::MalformedResponse, detail).with_status(status)
        };
        let access_token = match self.access_token {
            Some(token) if !token.is_blank() => token,
            _ => {
                return Err(malformed(
                    "the answer carries neither an access token nor an error code",
                ));
            }
        };
        let sent = self.refresh_token.filter(|t| !t.is_blank());
        let (refresh_token, rotation) = match (basis, sent) {
            (Basis::Refresh(grant), Some(new)) if new == grant.refresh_token => {
                (new, Rotation::Unchanged)
            }
            (Basis::Refresh(_), Some(new)) => (new, Rotation::Rotated),
            (Basis::Refresh(grant), None) => (grant.refresh_token.clone(), Rotation::CarriedOver),
            (Basis::Login, Some(new)) => (new, Rotation::Issued),
            (Basis::Login, None) => {
                return Err(malformed(
                    "the login answered with an access token but no refresh token",
                ));
            }
            (Basis::Unrefreshable, _) => (Secret::from(""), Rotation::NotRefreshable),
        };
        let previous_deadline = match basis {
            Basis::Refresh(grant) => grant.refreshable_until,
            Basis::Login | Basis::Unrefreshable => None,
        };
        let (expires_at, expiry_source) = resolve(self.expiry, sent_at);
        let refreshable_until = match vendor.refresh_window() {
            Some(RefreshWindow::UntilAccessTokenExpiry) => Some(expires_at),
            Some(RefreshWindow::AfterAccessTokenExpiry { grace }) => TimeDelta::from_std(grace)
                .ok()
                .and_then(|grace| expires_at.checked_add_signed(grace)),
            Some(RefreshWindow::WhileRefreshTokenLives {
                lifetime: Some(lifetime),
            }) if matches!(rotation, Rotation::Rotated | Rotation::Issued) => {
                TimeDelta::from_std(lifetime)
                    .ok()
                    .and_then(|lifetime| sent_at.checked_add_signed(lifetime))
            }
            Some(RefreshWindow::WhileRefreshTokenLives { lifetime: Some(_) }) => previous_deadline,
            Some(RefreshWindow::WhileRefreshTokenLives { lifetime: None }) | None => None,
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
            // The refresher fills it in from the answer's `Date` (vendor_clock.rs).
            vendor_clock_ahead: None,
            anomalies: self.anomalies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec code without a kind fails here: every code a compiled vendor documents has one.
    #[test]
    fn every_documented_code_has_a_kind() {
        let mut missing = Vec::new();
        for kinds in CODE_KINDS {
            let fields = kinds.code_fields;
            for field in fields {
                for code in field.codes {
                    if kinds.kind_of(code).is_none() {
                        missing.push(format!("{} {} {}", kinds.vendor, field.path, code.name));
                    }
                }
            }
            for (code, _) in kinds.codes {
                assert!(
                    fields.iter().any(|f| f.codes.contains(code)),
                    "{}: the kind map names {} of another vendor",
                    kinds.vendor,
                    code.name
                );
            }
        }
        assert!(missing.is_empty(), "codes without a kind: {missing:?}");
    }

    /// The facade keeps no undocumented-code kind that would send a caller to log in again on a guess.
    #[test]
    fn an_undocumented_code_never_asks_for_a_new_login() {
        for kinds in CODE_KINDS {
            assert_ne!(
                kinds.undocumented,
                ErrorKind::ReauthorizationRequired,
                "{}",
                kinds.vendor
            );
        }
    }

    #[test]
    fn every_compiled_vendor_has_a_refresh_window() {
        for kinds in CODE_KINDS {
            assert!(refresh_window(kinds.vendor).is_some(), "{}", kinds.vendor);
        }
    }
}

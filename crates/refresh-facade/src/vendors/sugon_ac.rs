//! Sugon / SCNet AC: the token renews itself (`token` header); the new one comes back in `data` (documented as
//! an array, sent as a string) or `token`. Its expiry is the JWT's `expireTime` claim.
#![cfg(feature = "sugon-ac")]

use std::time::Duration;

use crate::Anomaly;

use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use refresh_runtime::Secret;
use refresh_sugon_ac::error_codes::code;
use refresh_sugon_ac::operations::{GET_TOKENS, RENEW_TOKEN};
use refresh_sugon_ac::types::{ClusterId, ClusterToken, TokenData, TokenEnvelope};

use super::{Answer, Basis, Exchange};
use crate::config::{ConfigError, base_url};
use crate::error::{CodeKinds, ErrorKind::*, Redactor, RefreshError, Said};
use crate::expiry::ExpiryHint;
use crate::grant::{Grant, RefreshGrant};
use crate::token::{TokenSet, VendorExtras};
use crate::vendor::{RefreshWindow, Vendor};

const VENDOR: Vendor = Vendor::SugonAc;

/// "Once a token has been expired for 24 hours it can no longer be renewed."
pub(crate) const REFRESH_WINDOW: RefreshWindow = RefreshWindow::AfterAccessTokenExpiry {
    grace: Duration::from_secs(24 * 60 * 60),
};

/// What each documented code means for a caller.
pub(crate) const CODE_KINDS: CodeKinds = CodeKinds {
    vendor: VENDOR,
    code_fields: refresh_sugon_ac::error_codes::ALL,
    operations: refresh_sugon_ac::operations::ALL,
    codes: &[
        (code::INTERNAL_ERROR, Transient),
        (code::PARAMETERS_INCOMPLETE, InvalidRequest),
        // What the code documents. A renewal's 10004 for a token past its 24 h window is read from the token's
        // own expireTime claim (`classify_invalid_token`); a login's is a rejected credential.
        (code::INVALID_PARAMETER, InvalidRequest),
        (code::INSUFFICIENT_PERMISSION, CredentialsRejected),
        (code::NO_INTERFACE_PERMISSION, CredentialsRejected),
    ],
    statuses: &[],
    undocumented: InvalidRequest,
};

/// Sugon / SCNet AC: the token renews itself; only the host is configured.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[non_exhaustive]
pub struct SugonAcConfig {
    /// Defaults to SCNet's public host; deployments have their own.
    pub base_url: Option<String>,
    /// The compute region whose token a login returns ([`crate::Grant::SugonAcPassword`]); default: the
    /// platform-level token (clusterId 0, "ac").
    pub cluster_id: Option<String>,
}

impl SugonAcConfig {
    pub fn new() -> Self {
        SugonAcConfig::default()
    }
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
    pub fn with_cluster_id(mut self, cluster_id: impl Into<String>) -> Self {
        self.cluster_id = Some(cluster_id.into());
        self
    }
}

/// What Sugon AC says besides the token: its claims, and after a login the other regions' tokens.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SugonAcExtras {
    pub claims: SugonAcClaims,
    /// The login's tokens for the regions other than the one returned (empty after a renewal).
    pub other_regions: Vec<SugonAcRegion>,
}

/// One compute region of a login's answer.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SugonAcRegion {
    pub cluster_id: String,
    pub cluster_name: Option<String>,
    /// `None` where the account is suspended in the region.
    pub token: Option<Secret>,
}

/// The claims of a Sugon AC token (a JWT), read without verifying its signature (the key is the vendor's).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SugonAcClaims {
    pub compute_user: Option<String>,
    pub account_status: Option<String>,
    pub creator: Option<String>,
    pub role: Option<String>,
    /// Milliseconds since the epoch, as a string.
    pub expire_time: Option<String>,
    pub cluster_id: Option<String>,
    pub invoker: Option<String>,
    pub user: Option<String>,
    pub user_id: Option<String>,
    /// Claims not listed above.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug)]
pub(crate) struct Adapter {
    client: refresh_sugon_ac::Client,
    /// The region a login returns.
    cluster_id: String,
}

/// The platform-level region of a login's answer.
const PLATFORM_CLUSTER_ID: &str = "0";
const PLATFORM_CLUSTER_NAME: &str = "ac";

impl Adapter {
    pub(crate) fn new(config: SugonAcConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        let base = base_url(
            VENDOR,
            config.base_url.as_deref(),
            refresh_sugon_ac::DEFAULT_BASE_URL,
        )?;
        Ok(Adapter {
            client: refresh_sugon_ac::Client::new_with_client(&base, http),
            cluster_id: config
                .cluster_id
                .filter(|id| !id.trim().is_empty())
                .unwrap_or_else(|| PLATFORM_CLUSTER_ID.to_owned()),
        })
    }

    pub(crate) async fn refresh(
        &self,
        grant: &RefreshGrant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(grant.secrets());
        let old_token = grant.refresh_token.expose_secret();
        let call = self.client.renew_token().token(old_token).send();
        let exchange = Exchange {
            operation: &RENEW_TOKEN,
            kinds: &CODE_KINDS,
            redactor: &redactor,
        };
        let too_old = |error: RefreshError| match error.vendor_code() {
            Some(sent) if sent == code::INVALID_PARAMETER.code => {
                classify_invalid_token(error, old_token, sent_at)
            }
            _ => error,
        };
        let read = |status, envelope: TokenEnvelope| {
            check(status, &envelope, &redactor)?;
            let mut anomalies = Vec::new();
            if envelope.code.is_none() {
                // No code says nothing: the answer stands or falls by its token.
                anomalies.push(Anomaly::NoCode);
            }
            let old_cluster = claims(old_token).and_then(|c| c.cluster_id);
            let token = envelope.token.or(match envelope.data {
                Some(TokenData::Token(token)) => Some(token),
                Some(TokenData::Array(regions)) => pick_region(regions, old_cluster.as_deref()),
                None => None,
            });
            Ok(token_answer(status, token, anomalies))
        };
        let answer = exchange.read(call, read, unread).await.map_err(too_old)?;
        renewed(answer, Vec::new())?.into_token_set(VENDOR, grant, sent_at)
    }

    /// The login (`get_tokens`): one token per region; the configured region's is returned.
    pub(crate) async fn obtain(
        &self,
        grant: &Grant,
        sent_at: DateTime<Utc>,
    ) -> Result<TokenSet, RefreshError> {
        let Grant::SugonAcPassword {
            user,
            password,
            org_id,
        } = grant
        else {
            return Err(super::not_this_vendors(VENDOR, grant));
        };
        let redactor = Redactor::new(grant.secrets());
        let call = self
            .client
            .get_tokens()
            .user(user)
            .password(password.expose_secret())
            .org_id(org_id)
            .send();
        let exchange = Exchange {
            operation: &GET_TOKENS,
            kinds: &CODE_KINDS,
            redactor: &redactor,
        };
        // A login's only parameters are the credentials: an invalid one is a rejected credential.
        let credentials_rejected = |error: RefreshError| match error.vendor_code() {
            Some(sent) if sent == code::INVALID_PARAMETER.code => error.with_kind(
                CredentialsRejected,
                "10004 (invalid parameter) on a login: the user, password or orgId is wrong",
            ),
            _ => error,
        };
        // The regions other than the configured one, which the login's extras list.
        let mut others = Vec::new();
        let read = |status, envelope: TokenEnvelope| {
            check(status, &envelope, &redactor)?;
            let mut anomalies = Vec::new();
            let (token, other_regions) = match envelope.data {
                Some(TokenData::Array(regions)) => {
                    let mut regions: Vec<SugonAcRegion> =
                        regions.into_iter().map(SugonAcRegion::from).collect();
                    let platform = self.cluster_id == PLATFORM_CLUSTER_ID;
                    let by_id = regions.iter().position(|r| r.cluster_id == self.cluster_id);
                    // The platform region by its name where its id is unreadable; else, for the default, the first
                    // region with a token, said in the anomalies (a login's tokens are not thrown away on a guess).
                    let by_name = || {
                        platform
                            .then(|| {
                                regions.iter().position(|r| {
                                    r.cluster_name.as_deref() == Some(PLATFORM_CLUSTER_NAME)
                                })
                            })
                            .flatten()
                    };
                    let first_with_token = || {
                        let first = platform
                            .then(|| regions.iter().position(|r| r.token.is_some()))
                            .flatten();
                        if first.is_some() {
                            anomalies.push(Anomaly::NoPlatformRegion);
                        }
                        first
                    };
                    let chosen = by_id
                        .or_else(by_name)
                        .or_else(first_with_token)
                        .ok_or_else(|| {
                            let known: Vec<&str> =
                                regions.iter().map(|r| r.cluster_id.as_str()).collect();
                            let detail = format!(
                                "the login's answer has no region {} (it has: {})",
                                self.cluster_id,
                                known.join(", ")
                            );
                            RefreshError::new(VENDOR, CredentialsRejected, detail)
                                .with_status(status)
                        })?;
                    let chosen = regions.remove(chosen);
                    let Some(token) = chosen.token else {
                        let detail = format!(
                            "the vendor sent no token for region {}: the account is suspended there",
                            chosen.cluster_id
                        );
                        return Err(RefreshError::new(VENDOR, CredentialsRejected, detail)
                            .with_status(status));
                    };
                    (Some(token), regions)
                }
                Some(TokenData::Token(token)) => {
                    anomalies.push(Anomaly::OneTokenNotRegions);
                    (Some(token), Vec::new())
                }
                None => (envelope.token, Vec::new()),
            };
            others = other_regions;
            Ok(token_answer(status, token, anomalies))
        };
        let answer = exchange
            .read(call, read, unread)
            .await
            .map_err(credentials_rejected)?;
        renewed(answer, others)?.into_token_set(VENDOR, Basis::Login, sent_at)
    }
}

/// The vendor's error when the envelope (HTTP 200 either way) carries a `code` other than "0".
fn check(
    status: u16,
    envelope: &TokenEnvelope,
    redactor: &Redactor<'_>,
) -> Result<(), RefreshError> {
    let said = Said {
        status: Some(status),
        message: envelope.msg.as_deref(),
        request_id: None,
        redactor,
    };
    CODE_KINDS.check(&code::FIELD, envelope.code.as_deref(), &said)
}

/// "Once a token has been expired for 24 hours it can no longer be renewed"; the page does not say which code
/// such a renewal gets. A 10004 (invalid parameter) on the renewal of a token whose own `expireTime` claim is
/// past that window is one: a new login is needed. Any other 10004 stays what the code documents.
fn classify_invalid_token(error: RefreshError, token: &str, now: DateTime<Utc>) -> RefreshError {
    let deadline = claims(token)
        .and_then(|claims| claims.expire_time)
        .and_then(|millis| millis.trim().parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
        .and_then(|expired| expired.checked_add_signed(TimeDelta::hours(24)));
    match deadline {
        Some(deadline) if now > deadline => error.with_kind(
            ReauthorizationRequired,
            "10004 (invalid parameter) on the renewal of a token whose expireTime is more than 24 hours past: \
             it can no longer be renewed; log in again",
        ),
        _ => error,
    }
}

impl From<ClusterToken> for SugonAcRegion {
    fn from(region: ClusterToken) -> Self {
        SugonAcRegion {
            cluster_id: match region.cluster_id {
                Some(ClusterId::String(id)) => id,
                Some(ClusterId::Int64(id)) => id.to_string(),
                None => String::new(),
            },
            cluster_name: region.cluster_name,
            token: region.token.filter(|token| !token.is_blank()),
        }
    }
}

/// The extras of an answer before its token is read: none.
fn unread() -> VendorExtras {
    VendorExtras::SugonAc(SugonAcExtras {
        claims: SugonAcClaims::default(),
        other_regions: Vec::new(),
    })
}

/// A typed answer's one token, as the access token (the role [`renewed`] reads first).
fn token_answer(status: u16, token: Option<Secret>, anomalies: Vec<Anomaly>) -> Answer {
    Answer {
        status: Some(status),
        access_token: token,
        refresh_token: None,
        token_type: None,
        expiry: ExpiryHint::Absent,
        extras: unread(),
        anomalies,
    }
}

/// The token renews itself: whichever role the answer gave it (typed, or salvaged from a raw body), it is both
/// tokens, and its expiry is its `expireTime` claim (else what the answer says). `other_regions` are the login's
/// other regions.
fn renewed(mut answer: Answer, other_regions: Vec<SugonAcRegion>) -> Result<Answer, RefreshError> {
    let token = answer.access_token.take().or(answer.refresh_token.take());
    if let Some(token) = &token {
        let token = token.expose_secret();
        // Prose ("token is valid", the state endpoint's answer) is no token of any shape.
        if token.contains(char::is_whitespace) {
            let detail = "the renewal answered with text, not a token";
            return Err(
                RefreshError::new(VENDOR, MalformedResponse, detail).with_status(answer.status)
            );
        }
        // A token that is not a JWT is still the token the vendor rotated to: the one it renewed is spent, so
        // throwing this one away would lose the credential. It is kept, said, and given the conservative
        // lifetime (it has no expiry claim to read).
        if token.split('.').count() != 3 {
            answer.anomalies.push(Anomaly::NotAJwt);
        }
    }
    let claims = token
        .as_ref()
        .and_then(|t| claims(t.expose_secret()))
        .unwrap_or_default();
    if let Some(expire_time) = claims.expire_time.clone() {
        answer.expiry = ExpiryHint::ClaimMillis(expire_time);
    }
    Ok(Answer {
        access_token: token.clone(),
        // The token is its own refresh credential.
        refresh_token: token,
        extras: VendorExtras::SugonAc(SugonAcExtras {
            claims,
            other_regions,
        }),
        ..answer
    })
}

/// The region list form of `data`: the token of the old token's region, else the first token.
fn pick_region(regions: Vec<ClusterToken>, cluster: Option<&str>) -> Option<Secret> {
    let same_region = |region: &ClusterToken| match (&region.cluster_id, cluster) {
        (Some(ClusterId::String(id)), Some(cluster)) => id.as_str() == cluster,
        (Some(ClusterId::Int64(id)), Some(cluster)) => id.to_string() == cluster,
        _ => false,
    };
    let chosen = regions
        .iter()
        .find(|r| same_region(r) && r.token.is_some())
        .or(regions.iter().find(|r| r.token.is_some()));
    chosen.and_then(|r| r.token.clone())
}

/// The JWT's payload claims, read without verifying the signature (the key is the vendor's).
fn claims(token: &str) -> Option<SugonAcClaims> {
    let payload = token.split('.').nth(1)?;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_token_claims_are_read() {
        // The request sample of the vendor's renewal page.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjb21wdXRlVXNlciI6InNsdXJtdGVzdCIsImFjY291bnRTdGF0dXMiOiJUcmlhbCIsImNyZWF0b3IiOiJhYyIsInJvbGUiOiIxIiwiZXhwaXJlVGltZSI6IjE2ODY5MDg1MDkyMzEiLCJjbHVzdGVySWQiOiIxMTExMiIsImludm9rZXIiOiI2MDQ4Y2U3YmExNWMyYWYyZThjZWMxMjk5MWVjMTNjZiIsInVzZXIiOiJzbHVybXRlc3QiLCJ1c2VySWQiOiIxMTY1NTA0ODU0MSJ9.U7pZKgO_K6NuRwOWPxblDfgRpGeVxS-BYieOdLhGDK4";
        let claims = claims(token).unwrap();
        assert_eq!(claims.expire_time.as_deref(), Some("1686908509231"));
        assert_eq!(claims.cluster_id.as_deref(), Some("11112"));
        assert_eq!(claims.user_id.as_deref(), Some("11655048541"));
        assert_eq!(claims.account_status.as_deref(), Some("Trial"));
        assert!(claims.other.is_empty());
    }

    #[test]
    fn unreadable_tokens_have_no_claims() {
        for token in ["", "a.b", "a.!!!.c", "a.bm90IGpzb24.c"] {
            assert!(claims(token).is_none(), "{token}");
        }
    }

    #[test]
    fn the_region_of_the_old_token_is_preferred_then_the_first_with_a_token() {
        let region = |id: ClusterId, token: Option<&str>| ClusterToken {
            cluster_id: Some(id),
            cluster_name: None,
            token: token.map(Secret::from),
        };
        let regions = vec![
            region(ClusterId::String("0".into()), Some("platform")),
            region(ClusterId::Int64(11112), Some("regional")),
            region(ClusterId::String("777".into()), None),
        ];
        let pick =
            |cluster| pick_region(regions.clone(), cluster).map(|t| t.expose_secret().to_owned());
        assert_eq!(pick(Some("11112")).as_deref(), Some("regional"));
        assert_eq!(pick(Some("0")).as_deref(), Some("platform"));
        assert_eq!(pick(Some("777")).as_deref(), Some("platform"), "suspended");
        assert_eq!(pick(None).as_deref(), Some("platform"));
        assert_eq!(pick_region(Vec::new(), Some("0")), None);
    }
}

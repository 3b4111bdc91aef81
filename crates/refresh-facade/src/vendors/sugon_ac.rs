//! Sugon / SCNet AC: the token renews itself (`token` header); the new one comes back in `data` (documented as
//! an array, sent as a string) or `token`. Its expiry is the JWT's `expireTime` claim.

use base64::Engine;
use chrono::Utc;
use refresh_sugon_ac::Secret;
use refresh_sugon_ac::types::{ClusterId, TokenData};

use super::{Answer, no_documented_error, send};
use crate::config::{ConfigError, SugonAcConfig, base_url};
use crate::error::{CodeTable, ErrorKind::*, Redactor, RefreshError};
use crate::expiry::ExpiryHint;
use crate::grant::RefreshGrant;
use crate::token::{SugonAcClaims, TokenSet, VendorExtras};
use crate::vendor::Vendor;

const VENDOR: Vendor = Vendor::SugonAc;

const CODES: CodeTable = CodeTable {
    vendor: VENDOR,
    field: "code",
    codes: &[
        ("10001", Transient, "internal error"),
        ("10003", InvalidRequest, "parameters incomplete"),
        // The token is a renewal's only parameter: an invalid parameter is an invalid, or too old, token.
        ("10004", ReauthorizationRequired, "invalid parameter"),
        ("10008", CredentialsRejected, "insufficient permission"),
        (
            "10009",
            CredentialsRejected,
            "no permission to access the interface",
        ),
    ],
    undocumented: InvalidRequest,
};

pub(crate) const CODE_TABLES: &[CodeTable] = &[CODES];

#[derive(Clone, Debug)]
pub(crate) struct Adapter {
    client: refresh_sugon_ac::Client,
}

impl Adapter {
    pub(crate) fn new(config: SugonAcConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        let base = base_url(
            VENDOR,
            config.base_url.as_deref(),
            refresh_sugon_ac::DEFAULT_BASE_URL,
        )?;
        Ok(Adapter {
            client: refresh_sugon_ac::Client::new_with_client(&base, http),
        })
    }

    pub(crate) async fn refresh(&self, grant: &RefreshGrant) -> Result<TokenSet, RefreshError> {
        let redactor = Redactor::new(grant.secrets());
        let old_token = grant.refresh_token.expose_secret();
        let sent_at = Utc::now();
        let call = self.client.renew_token().token(old_token).send();
        let decoded = refresh_sugon_ac::decoded_statuses("renew_token");
        let (status, envelope) = send(
            VENDOR,
            decoded,
            &redactor,
            call,
            no_documented_error(VENDOR),
        )
        .await?;

        match envelope.code.as_deref() {
            Some("0") => {}
            Some(code) => {
                return Err(CODES.error(code, envelope.msg.as_deref(), status, &redactor));
            }
            None => {
                let detail = "the answer has no `code`";
                return Err(
                    RefreshError::new(VENDOR, MalformedResponse, detail).with_status(status)
                );
            }
        }
        let old_cluster = claims(old_token).and_then(|c| c.cluster_id);
        let new_token = envelope
            .token
            .map(Secret::into_exposed)
            .or(match envelope.data {
                Some(TokenData::Token(token)) => Some(token.into_exposed()),
                Some(TokenData::Array(regions)) => pick_region(regions, old_cluster.as_deref()),
                None => None,
            });
        if let Some(token) = &new_token
            && token.split('.').count() != 3
        {
            let detail = "the renewal answered with something that is not a token (a JWT)";
            return Err(RefreshError::new(VENDOR, MalformedResponse, detail).with_status(status));
        }
        let claims = new_token.as_deref().and_then(claims).unwrap_or_default();
        let expire_time = claims.expire_time.clone();
        Answer {
            access_token: new_token.clone(),
            // The token is its own refresh credential.
            refresh_token: new_token,
            token_type: None,
            expiry: expire_time
                .as_deref()
                .map_or(ExpiryHint::Absent, ExpiryHint::ClaimMillis),
            extras: VendorExtras::SugonAc(claims),
        }
        .into_token_set(VENDOR, grant, sent_at, status)
    }
}

/// The region list form of `data`: the token of the old token's region, else the first token.
fn pick_region(
    regions: Vec<refresh_sugon_ac::types::ClusterToken>,
    cluster: Option<&str>,
) -> Option<String> {
    let same_region =
        |region: &refresh_sugon_ac::types::ClusterToken| match (&region.cluster_id, cluster) {
            (Some(ClusterId::String(id)), Some(cluster)) => id.as_str() == cluster,
            (Some(ClusterId::Int64(id)), Some(cluster)) => id.to_string() == cluster,
            _ => false,
        };
    let chosen = regions
        .iter()
        .find(|r| same_region(r) && r.token.is_some())
        .or(regions.iter().find(|r| r.token.is_some()));
    chosen
        .and_then(|r| r.token.clone())
        .map(Secret::into_exposed)
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
}

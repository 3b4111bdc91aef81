//! What a refresh starts from.

use chrono::{DateTime, Utc};

use refresh_runtime::Secret;

use crate::token::TokenSet;

/// The tokens a refresh presents to the vendor.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RefreshGrant {
    /// The refresh token; for Sugon AC, the current token itself.
    pub refresh_token: Secret,
    /// The current access token. Ekuaibao requires it; the others ignore it.
    pub access_token: Option<Secret>,
    /// Until when the refresh token can be used, where known (carried over when the vendor does not rotate).
    pub refreshable_until: Option<DateTime<Utc>>,
}

impl RefreshGrant {
    pub fn new(refresh_token: impl Into<Secret>) -> Self {
        RefreshGrant {
            refresh_token: refresh_token.into(),
            access_token: None,
            refreshable_until: None,
        }
    }

    pub fn with_access_token(mut self, access_token: impl Into<Secret>) -> Self {
        self.access_token = Some(access_token.into());
        self
    }

    /// The secrets of the grant, to keep them out of vendor messages.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.refresh_token.expose_secret())
            .chain(self.access_token.as_ref().map(|t| t.expose_secret()))
    }
}

impl From<&TokenSet> for RefreshGrant {
    /// The grant for the next refresh of `tokens`.
    fn from(tokens: &TokenSet) -> Self {
        RefreshGrant {
            refresh_token: tokens.refresh_token.clone(),
            access_token: Some(tokens.access_token.clone()),
            refreshable_until: tokens.refreshable_until,
        }
    }
}

//! What a store keeps of one credential, and the name it keeps it under.

use std::fmt;

use chrono::{DateTime, Utc};
use refresh_facade::{RefreshGrant, Secret, TokenSet, Vendor};

/// The name of a credential in a store: 1 to 128 ASCII letters, digits, `-`, `_` and `.`, not starting with
/// `.`. It names a file in a [`crate::FileStore`], so nothing else is allowed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId(String);

/// A credential name that [`CredentialId`] refuses, with why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid credential id {id:?}: {reason}")]
pub struct InvalidCredentialId {
    pub id: String,
    pub reason: &'static str,
}

impl CredentialId {
    const LONGEST: usize = 128;

    pub fn new(id: impl Into<String>) -> Result<Self, InvalidCredentialId> {
        let id = id.into();
        let refuse = |reason| {
            Err(InvalidCredentialId {
                id: id.clone(),
                reason,
            })
        };
        if id.is_empty() || id.len() > Self::LONGEST {
            return refuse("it must be 1 to 128 characters long");
        }
        if id.starts_with('.') {
            return refuse("it must not start with '.'");
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !id.chars().all(allowed) {
            return refuse("only ASCII letters, digits, '-', '_' and '.' are allowed");
        }
        Ok(CredentialId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Written as its string.
impl serde::Serialize for CredentialId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Read as a string, which must be a valid id.
impl<'de> serde::Deserialize<'de> for CredentialId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        CredentialId::new(id).map_err(serde::de::Error::custom)
    }
}

/// The tokens of one credential as a store keeps them: what the next refresh needs and when it is due. Tokens are
/// [`Secret`]s: `Debug` never shows them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct StoredTokens {
    pub vendor: Vendor,
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub expires_at: DateTime<Utc>,
    pub obtained_at: DateTime<Utc>,
    pub refreshable_until: Option<DateTime<Utc>>,
}

impl From<&TokenSet> for StoredTokens {
    fn from(tokens: &TokenSet) -> Self {
        StoredTokens {
            vendor: tokens.vendor,
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expires_at: tokens.expires_at,
            obtained_at: tokens.obtained_at,
            refreshable_until: tokens.refreshable_until,
        }
    }
}

impl StoredTokens {
    /// The grant of the next refresh.
    pub fn grant(&self) -> RefreshGrant {
        let mut grant = RefreshGrant::new(self.refresh_token.clone())
            .with_access_token(self.access_token.clone());
        grant.refreshable_until = self.refreshable_until;
        grant
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Tokens for tests: `tag` makes them distinct.
    pub(crate) use crate::store::conformance::tokens;

    #[test]
    fn ids_are_safe_file_names() {
        for ok in ["prod", "ekuaibao.tenant-7", "A_b.9", &"x".repeat(128)] {
            assert_eq!(CredentialId::new(ok).unwrap().as_str(), ok);
        }
        for refused in [
            "",
            ".hidden",
            "..",
            "a/b",
            "a\\b",
            "é",
            "a b",
            &"x".repeat(129),
        ] {
            let error = CredentialId::new(refused).unwrap_err();
            assert_eq!(error.id, refused);
            assert!(
                error.to_string().starts_with("invalid credential id"),
                "{error}"
            );
        }
    }

    #[test]
    fn stored_tokens_never_show_a_token_and_give_the_next_grant() {
        let stored = tokens("t1");
        let shown = format!("{stored:?}");
        assert!(
            !shown.contains("access-t1") && !shown.contains("refresh-t1"),
            "{shown}"
        );
        let grant = stored.grant();
        assert_eq!(grant.refresh_token.expose_secret(), "refresh-t1");
        assert_eq!(grant.access_token.unwrap().expose_secret(), "access-t1");
        assert_eq!(grant.refreshable_until, stored.refreshable_until);
    }
}

//! Tokens as secrets: never printed, zeroized when dropped.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A token or credential. `Debug` and `Display` print `[redacted]`; the memory is zeroized on drop (secrecy).
/// Read it with [`SecretToken::expose_secret`], where it goes on the wire.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretToken(SecretString);

impl SecretToken {
    pub fn new(value: impl Into<String>) -> Self {
        SecretToken(SecretString::from(value.into()))
    }

    /// The token itself. Do not log it.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// True when both hold the same token.
    pub fn same_as(&self, other: &SecretToken) -> bool {
        self.expose_secret() == other.expose_secret()
    }
}

impl From<String> for SecretToken {
    fn from(value: String) -> Self {
        SecretToken::new(value)
    }
}

impl From<&str> for SecretToken {
    fn from(value: &str) -> Self {
        SecretToken::new(value)
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken([redacted])")
    }
}

impl fmt::Display for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_token() {
        let token = SecretToken::new("canary-secret-value");
        assert_eq!(format!("{token:?}"), "SecretToken([redacted])");
        assert_eq!(format!("{token}"), "[redacted]");
        assert_eq!(format!("{token:#?}"), "SecretToken([redacted])");
        assert_eq!(token.expose_secret(), "canary-secret-value");
    }
}

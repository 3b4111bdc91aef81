//! The one secret type of refresh-kit.

use std::fmt;

use zeroize::Zeroize;

/// A token or credential. `Debug` and `Display` print `[redacted]`, so that printing a request, an answer or a
/// token set never shows one; serde reads and writes the value itself (transparent), so it goes on the wire
/// unchanged; the memory is zeroized when the value is dropped. Read it with [`Secret::expose_secret`], where it
/// goes on the wire.
#[derive(Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself. Do not log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// True when the secret is empty or only white space (a vendor's "no token").
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl From<&String> for Secret {
    fn from(value: &String) -> Self {
        Secret(value.clone())
    }
}

impl From<&Secret> for Secret {
    fn from(value: &Secret) -> Self {
        value.clone()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("canary-secret-value");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(format!("{secret:#?}"), "Secret([redacted])");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(secret.expose_secret(), "canary-secret-value");
    }

    #[test]
    fn serde_carries_the_value_itself() {
        let secret: Secret = serde_json::from_str(r#""tok-123""#).unwrap();
        assert_eq!(secret.expose_secret(), "tok-123");
        assert_eq!(serde_json::to_string(&secret).unwrap(), r#""tok-123""#);
        #[derive(serde::Serialize)]
        struct Body {
            token: Secret,
        }
        let body = Body {
            token: "abc".into(),
        };
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"token":"abc"}"#);
    }

    #[test]
    fn conversions_keep_the_value() {
        let owned = String::from("from-string");
        assert_eq!(Secret::from(&owned).expose_secret(), "from-string");
        assert_eq!(Secret::from(owned).expose_secret(), "from-string");
        let secret = Secret::from("from-str");
        assert_eq!(Secret::from(&secret), secret);
        assert_ne!(Secret::from("a"), Secret::from("b"));
    }

    #[test]
    fn blank_secrets_are_told_apart() {
        assert!(Secret::new("").is_blank());
        assert!(Secret::new(" \t").is_blank());
        assert!(!Secret::new(" x ").is_blank());
    }
}

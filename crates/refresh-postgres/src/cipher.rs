//! Tokens encrypted at rest: AES-256-GCM under keys the service provides, each with an id stored beside the
//! ciphertext so that keys can be rotated (new writes use the current key; older keys still open older rows).

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;

/// The keys a [`crate::PgStore`] encrypts and decrypts with: the current one (every write) and older ones (reads of
/// rows not yet rewritten). Its `Debug` shows key ids, never key material.
#[derive(Clone)]
pub struct Keyring {
    current: Key,
    older: Vec<Key>,
}

#[derive(Clone)]
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// A key that cannot be used: named in the message, never shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error(
        "no encryption key: set {0} to `<key id>:<32 bytes in base64>` (comma-separated, current key first)"
    )]
    Missing(String),
    #[error("the encryption key {key_id:?} is not usable: {reason}")]
    Invalid {
        key_id: String,
        reason: &'static str,
    },
    #[error("the key file could not be read: {0}")]
    File(#[from] std::io::Error),
    /// A key file others may read: the keys in it open every token in the database.
    #[error("the key file {path} may be read by others (mode {mode:o}): run `chmod 600 {path}`")]
    Exposed { path: String, mode: u32 },
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    UnknownKey,
    /// A wrong key under a known id, or altered ciphertext: GCM cannot tell them apart.
    Rejected,
}

impl OpenError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            OpenError::UnknownKey => "no key with this id was given to the store",
            OpenError::Rejected => {
                "authentication failed: a different key under this id, or altered data"
            }
        }
    }
}

impl Keyring {
    /// A keyring whose current key is `key` (32 bytes), named `key_id`.
    pub fn new(key_id: impl Into<String>, key: &[u8]) -> Result<Self, KeyError> {
        Ok(Keyring {
            current: Key::new(key_id.into(), key)?,
            older: Vec::new(),
        })
    }

    /// The same keyring, also opening rows written under an older key.
    pub fn with_older(mut self, key_id: impl Into<String>, key: &[u8]) -> Result<Self, KeyError> {
        self.older.push(Key::new(key_id.into(), key)?);
        Ok(self)
    }

    /// Keys written as `<key id>:<base64 of 32 bytes>`, comma- or line-separated, the current one first.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut entries = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty() && !entry.starts_with('#'));
        let current = entries
            .next()
            .ok_or_else(|| KeyError::Missing("the key list".into()))?;
        let mut keyring = Self::from_entry(current, Keyring::new)?;
        for entry in entries {
            keyring = Self::from_entry(entry, |id, key| keyring.clone().with_older(id, key))?;
        }
        Ok(keyring)
    }

    /// [`Keyring::parse`] of the environment variable `variable`.
    pub fn from_env(variable: &str) -> Result<Self, KeyError> {
        let text = Zeroizing::new(
            std::env::var(variable).map_err(|_| KeyError::Missing(variable.to_owned()))?,
        );
        Self::parse(&text)
    }

    /// [`Keyring::parse`] of a file, which must be readable by its owner alone.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        use std::os::unix::fs::MetadataExt;
        let path = path.as_ref();
        let mode = std::fs::metadata(path)?.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.display().to_string(),
                mode,
            });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path)?);
        Self::parse(&text)
    }

    fn from_entry(
        entry: &str,
        make: impl FnOnce(String, &[u8]) -> Result<Keyring, KeyError>,
    ) -> Result<Keyring, KeyError> {
        let (id, encoded) = entry.split_once(':').ok_or_else(|| KeyError::Invalid {
            key_id: String::new(),
            reason: "expected `<key id>:<base64>`",
        })?;
        let key = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| KeyError::Invalid {
                    key_id: id.to_owned(),
                    reason: "not base64",
                })?,
        );
        make(id.trim().to_owned(), &key)
    }

    /// The id of the key new writes use.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// `plaintext` sealed under the current key, bound to `context` (which row it belongs to): a random nonce,
    /// then the ciphertext and its tag.
    pub(crate) fn seal(&self, context: &[u8], plaintext: &[u8]) -> (String, Vec<u8>) {
        let mut nonce = [0_u8; NONCE_LEN];
        // The operating system's generator: a GCM nonce must never repeat under one key.
        getrandom::getrandom(&mut nonce).expect("the operating system's random number generator");
        let aad = aad(&self.current.id, context);
        let sealed = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encrypts any input shorter than 64 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        (self.current.id.clone(), out)
    }

    /// What [`Keyring::seal`] sealed under `key_id` for `context`.
    pub(crate) fn open(
        &self,
        key_id: &str,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|key| key.id == key_id)
            .ok_or(OpenError::UnknownKey)?;
        if sealed.len() < NONCE_LEN {
            return Err(OpenError::Rejected);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = aad(key_id, context);
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Rejected)
    }
}

/// What the tag authenticates besides the ciphertext: the format, the key id and the row, so that a ciphertext
/// moved to another row (or relabelled with another key id) does not open.
fn aad(key_id: &str, context: &[u8]) -> Vec<u8> {
    let mut aad = b"refresh-kit/pg/v1\0".to_vec();
    aad.extend_from_slice(key_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(context);
    aad
}

impl Key {
    fn new(id: String, key: &[u8]) -> Result<Self, KeyError> {
        if id.is_empty() || id.contains([',', ':', '\n']) {
            return Err(KeyError::Invalid {
                key_id: id,
                reason: "a key id is a non-empty name without `,` or `:`",
            });
        }
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| KeyError::Invalid {
            key_id: id.clone(),
            reason: "an AES-256 key is 32 bytes",
        })?;
        Ok(Key { id, cipher })
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field(
                "older",
                &self.older.iter().map(|key| &key.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(id: &str, byte: u8) -> Keyring {
        Keyring::new(id, &[byte; 32]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_row() {
        let keys = keyring("k1", 7);
        let (id, sealed) = keys.seal(b"credential:a", b"secret tokens");
        assert_eq!(id, "k1");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            keys.open("k1", b"credential:a", &sealed)
                .unwrap()
                .as_slice(),
            b"secret tokens"
        );
        // Another row, another key under the same id, an unknown id, a truncated value.
        assert_eq!(
            keys.open("k1", b"credential:b", &sealed),
            Err(OpenError::Rejected)
        );
        assert_eq!(
            keyring("k1", 8).open("k1", b"credential:a", &sealed),
            Err(OpenError::Rejected)
        );
        assert_eq!(
            keys.open("k2", b"credential:a", &sealed),
            Err(OpenError::UnknownKey)
        );
        assert_eq!(
            keys.open("k1", b"credential:a", &sealed[..5]),
            Err(OpenError::Rejected)
        );
        // Two seals of one value differ (a fresh nonce each time).
        assert_ne!(keys.seal(b"credential:a", b"secret tokens").1, sealed);
    }

    #[test]
    fn a_rotated_keyring_writes_with_the_new_key_and_reads_the_old() {
        let old = keyring("2025", 1);
        let (_, sealed) = old.seal(b"row", b"tokens");
        let text = format!(
            "2026:{},\n2025:{}",
            base64::engine::general_purpose::STANDARD.encode([2_u8; 32]),
            base64::engine::general_purpose::STANDARD.encode([1_u8; 32]),
        );
        let rotated = Keyring::parse(&text).unwrap();
        assert_eq!(rotated.current_id(), "2026");
        assert_eq!(
            rotated.open("2025", b"row", &sealed).unwrap().as_slice(),
            b"tokens"
        );
        assert_eq!(rotated.seal(b"row", b"tokens").0, "2026");
        assert_eq!(
            format!("{rotated:?}"),
            r#"Keyring { current: "2026", older: ["2025"] }"#
        );
    }

    /// A key file others may read is refused (and says how to fix it); the owner's alone is read.
    #[test]
    fn a_key_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let key = base64::engine::general_purpose::STANDARD.encode([5_u8; 32]);
        std::fs::write(&path, format!("k1:{key}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = Keyring::from_file(&path).unwrap_err();
        assert!(
            matches!(error, KeyError::Exposed { mode: 0o644, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("chmod 600") && !error.to_string().contains(&key));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Keyring::from_file(&path).unwrap().current_id(), "k1");
    }

    #[test]
    fn unusable_keys_are_typed_errors_that_show_no_key() {
        let short = base64::engine::general_purpose::STANDARD.encode([9_u8; 16]);
        let error = Keyring::parse(&format!("k:{short}")).unwrap_err();
        assert!(
            matches!(error, KeyError::Invalid { ref key_id, .. } if key_id == "k"),
            "{error}"
        );
        assert!(!error.to_string().contains(&short));
        assert!(matches!(
            Keyring::parse("k:***"),
            Err(KeyError::Invalid { .. })
        ));
        assert!(matches!(
            Keyring::parse("no separator"),
            Err(KeyError::Invalid { .. })
        ));
        assert!(matches!(Keyring::parse(""), Err(KeyError::Missing(_))));
        assert!(matches!(
            Keyring::from_env("REFRESH_KIT_TEST_NO_SUCH_VARIABLE"),
            Err(KeyError::Missing(name)) if name == "REFRESH_KIT_TEST_NO_SUCH_VARIABLE"
        ));
    }
}

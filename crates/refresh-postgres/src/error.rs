//! The store's errors beyond the manager's [`StoreError`](refresh_manager::StoreError): a connection string it
//! cannot use, and database errors told with their causes (tokio-postgres's own message names only the kind:
//! "error performing TLS handshake", not which certificate check failed).

use std::path::PathBuf;

use crate::tls::SslMode;

/// A connection string, or the files it names, that the store cannot connect with. No message quotes the
/// string itself: it may hold a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    #[error("the database connection setting {key} is not usable: {reason}")]
    Setting { key: &'static str, reason: String },
    #[error(
        "sslmode={} checks the server's certificate, but no root certificate is given: set sslrootcert to a \
         file of PEM certificates, or to `system` (with verify-full), or create ~/.postgresql/root.crt",
        .mode.as_str()
    )]
    NoRootCertificate { mode: SslMode },
    #[error("the root certificates in {path:?} are not usable: {reason}")]
    RootCertificate { path: PathBuf, reason: String },
    /// The store's tables were migrated by a newer release than this one.
    #[error(
        "the token tables are at migration {found}, newer than this release knows ({known}): it reads them but \
         writes nothing, so as not to break what the newer release wrote; upgrade refresh-kit on this replica"
    )]
    SchemaNewer { found: i32, known: i32 },
}

impl ConnectionError {
    pub fn is_root_certificate(&self) -> bool {
        matches!(
            self,
            ConnectionError::NoRootCertificate { .. } | ConnectionError::RootCertificate { .. }
        )
    }

    pub fn is_schema_newer(&self) -> bool {
        matches!(self, ConnectionError::SchemaNewer { .. })
    }
}

/// A database error whose message is its whole chain of causes, e.g. "error performing TLS handshake: invalid
/// peer certificate: UnknownIssuer". tokio-postgres never puts the connection string or a parameter's value in
/// these messages, so no password or token is in them.
#[derive(Debug)]
pub(crate) struct DatabaseError(Box<dyn std::error::Error + Send + Sync>);

impl DatabaseError {
    pub(crate) fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        DatabaseError(Box::new(error))
    }
}

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&chain(&*self.0))
    }
}

impl std::error::Error for DatabaseError {}

/// `error` and its sources, each once, joined by ": ", and what a certificate error means.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut meaning = None;
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        meaning = meaning.or_else(|| certificate_meaning(cause));
        source = cause.source();
    }
    if let Some(meaning) = meaning {
        text.push_str(" (");
        text.push_str(meaning);
        text.push(')');
    }
    text
}

/// rustls's certificate errors in the terms of the connection string.
fn certificate_meaning(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use rustls::CertificateError as Certificate;
    let rustls = match error.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        None => error.downcast_ref::<rustls::Error>()?,
    };
    let rustls::Error::InvalidCertificate(certificate) = rustls else {
        return None;
    };
    Some(match certificate {
        Certificate::UnknownIssuer => {
            "the server's certificate is not signed by a root in sslrootcert: is it the right CA file?"
        }
        Certificate::NotValidForName | Certificate::NotValidForNameContext { .. } => {
            "the server's certificate does not name the host connected to, which sslmode=verify-full requires"
        }
        Certificate::Expired | Certificate::ExpiredContext { .. } => {
            "the server's certificate has expired"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error performing TLS handshake")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_certificate_error_says_what_it_means() {
        let handshake = Outer(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        let text = DatabaseError::new(handshake).to_string();
        assert!(
            text.starts_with(
                "error performing TLS handshake: invalid peer certificate: UnknownIssuer"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("is not signed by a root in sslrootcert: is it the right CA file?)"),
            "{text}"
        );
        let expired = Outer(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        ));
        let text = DatabaseError::new(expired).to_string();
        assert!(
            text.ends_with("(the server's certificate has expired)"),
            "{text}"
        );
        let other = Outer(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked),
        ));
        assert!(!DatabaseError::new(other).to_string().ends_with(')'));
    }

    #[test]
    fn connection_errors_say_which_setting_and_answer_what_they_are() {
        for (mode, name) in [
            (SslMode::Disable, "sslmode=disable "),
            (SslMode::Prefer, "sslmode=prefer "),
            (SslMode::Require, "sslmode=require "),
            (SslMode::VerifyCa, "sslmode=verify-ca "),
            (SslMode::VerifyFull, "sslmode=verify-full "),
        ] {
            let error = ConnectionError::NoRootCertificate { mode };
            assert!(error.to_string().starts_with(name), "{error}");
            assert!(error.is_root_certificate() && !error.is_schema_newer());
        }
        let newer = ConnectionError::SchemaNewer { found: 3, known: 2 };
        assert!(newer.is_schema_newer() && !newer.is_root_certificate());
        let file = ConnectionError::RootCertificate {
            path: PathBuf::from("/ca.pem"),
            reason: "empty".into(),
        };
        assert!(file.is_root_certificate() && !file.is_schema_newer());
    }

    #[test]
    fn a_database_error_says_its_causes() {
        let error = DatabaseError::new(Outer(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        )));
        assert_eq!(
            error.to_string(),
            "error performing TLS handshake: invalid peer certificate: UnknownIssuer"
        );
    }
}

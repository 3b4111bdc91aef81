//! TLS to the database, with libpq's meaning of `sslmode` and `sslrootcert`, over rustls and the crypto provider
//! reqwest uses (aws-lc-rs), so that the tree holds one TLS stack.
//!
//! | `sslmode`     | encrypted                  | server certificate checked                    |
//! |---------------|----------------------------|-----------------------------------------------|
//! | `disable`     | never                      | —                                             |
//! | `prefer`      | if the server offers TLS   | no (as `require`)                             |
//! | `require`     | always                     | no; as `verify-ca` when a root file is given  |
//! | `verify-ca`   | always                     | chains to a root in `sslrootcert`             |
//! | `verify-full` | always                     | chains to a root, and names the host          |
//!
//! `prefer` is the default, as in libpq. `sslrootcert` is a file of PEM certificates (by default
//! `~/.postgresql/root.crt`, as in libpq), or `system` for the operating system's roots, which, as in libpq,
//! needs `verify-full` (and makes it the default).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::ConnectionError;

/// How much TLS a connection insists on, and how much of the server's certificate it checks (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt if the server offers it; check no certificate.
    Prefer,
    /// Always encrypt; check no certificate unless a root file is given (then as [`SslMode::VerifyCa`]).
    Require,
    /// Always encrypt, and the server's certificate chains to a trusted root.
    VerifyCa,
    /// Always encrypt, the certificate chains to a trusted root and names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// libpq's default.
    pub const DEFAULT: SslMode = SslMode::Prefer;

    /// Each mode and its name in a connection string. `allow` (plain first, TLS if refused) is not offered: it
    /// exists for servers long gone.
    const NAMES: [(SslMode, &'static str); 5] = [
        (SslMode::Disable, "disable"),
        (SslMode::Prefer, "prefer"),
        (SslMode::Require, "require"),
        (SslMode::VerifyCa, "verify-ca"),
        (SslMode::VerifyFull, "verify-full"),
    ];

    /// Its name in a connection string.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(mode, _)| *mode == self)
            .map_or("", |(_, name)| name)
    }

    pub(crate) fn parse(value: &str) -> Result<SslMode, ConnectionError> {
        Self::NAMES
            .iter()
            .find(|(_, name)| *name == value)
            .map(|(mode, _)| *mode)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::NAMES.iter().map(|(_, name)| *name).collect();
                ConnectionError::Setting {
                    key: "sslmode",
                    reason: format!("{value:?} is not one of {}", names.join(", ")),
                }
            })
    }

    /// The mode tokio-postgres negotiates with: whether TLS is tried, and whether it is required.
    pub(crate) fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

/// Where the trusted roots come from (libpq's `sslrootcert`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RootCert {
    /// Not given: libpq's default file, `~/.postgresql/root.crt`, if it exists.
    Default,
    /// A file of PEM certificates.
    File(PathBuf),
    /// The operating system's roots.
    System,
}

impl RootCert {
    pub(crate) fn parse(value: &str) -> RootCert {
        match value {
            "system" => RootCert::System,
            path => RootCert::File(PathBuf::from(path)),
        }
    }

    /// libpq's default root file under the home directory `home`.
    fn default_file(home: Option<std::ffi::OsString>) -> Option<PathBuf> {
        Some(PathBuf::from(home?).join(".postgresql").join("root.crt"))
    }
}

/// The checks a connection makes, resolved from the mode and the roots as libpq resolves them.
pub(crate) fn client_config(
    mode: Option<SslMode>,
    root: &RootCert,
) -> Result<(SslMode, rustls::ClientConfig), ConnectionError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mode = match (mode, root) {
        (None, RootCert::System) => SslMode::VerifyFull,
        (Some(mode), RootCert::System) if mode != SslMode::VerifyFull => {
            return Err(ConnectionError::Setting {
                key: "sslmode",
                reason: "sslrootcert=system needs sslmode=verify-full, as in libpq: the system's roots trust \
                         any public certificate, so only the host name makes the check mean anything"
                    .into(),
            });
        }
        (mode, _) => mode.unwrap_or(SslMode::DEFAULT),
    };
    // The root file: the one named, else libpq's default where it exists.
    let file = match root {
        RootCert::File(path) => Some(path.clone()),
        RootCert::Default => {
            RootCert::default_file(std::env::var_os("HOME")).filter(|path| path.exists())
        }
        RootCert::System => None,
    };
    let check = match mode {
        SslMode::Disable | SslMode::Prefer => Check::Nothing,
        SslMode::Require if file.is_none() => Check::Nothing,
        SslMode::Require | SslMode::VerifyCa => Check::Chain,
        SslMode::VerifyFull => Check::ChainAndName,
    };
    let chain = match check {
        Check::Nothing => None,
        Check::Chain | Check::ChainAndName => {
            let roots = match (root, file) {
                (RootCert::System, _) => system_roots()?,
                (_, Some(file)) => roots_from(file)?,
                (_, None) => return Err(ConnectionError::NoRootCertificate { mode }),
            };
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|error| ConnectionError::Setting {
                        key: "sslrootcert",
                        reason: error.to_string(),
                    })?;
            Some(webpki)
        }
    };
    let verifier = Arc::new(ModeVerifier {
        chain,
        name: matches!(check, Check::ChainAndName),
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ConnectionError::Setting {
            key: "sslmode",
            reason: error.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((mode, config))
}

enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

fn roots_from(path: PathBuf) -> Result<RootCertStore, ConnectionError> {
    let unreadable = |reason: String| ConnectionError::RootCertificate {
        path: path.clone(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(&path)
        .map_err(|error| unreadable(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(error.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (_, rejected) = roots.add_parsable_certificates(certificates);
    if roots.is_empty() {
        return Err(unreadable(format!(
            "it holds no usable certificate ({rejected} rejected)"
        )));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, ConnectionError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let reason = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(ConnectionError::RootCertificate {
            path: PathBuf::from("system"),
            reason,
        });
    }
    Ok(roots)
}

/// What a mode checks of the server's certificate: with `chain`, that it leads to a trusted root (and with
/// `name`, that it names the host); without, nothing, as libpq's `prefer` and `require` (encrypted against a
/// passive listener, and, as libpq documents, no defence against an active one). The handshake's signatures are
/// always checked, so the session is with the holder of the certificate's key, whoever that is.
#[derive(Debug)]
struct ModeVerifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ModeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain (and expiry) first and the name last: a name error means the chain held.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_root_file_is_libpqs_under_home() {
        assert_eq!(
            RootCert::default_file(Some("/home/svc".into())),
            Some(PathBuf::from("/home/svc/.postgresql/root.crt"))
        );
        assert_eq!(RootCert::default_file(None), None);
        assert_eq!(RootCert::parse("system"), RootCert::System);
        assert_eq!(
            RootCert::parse("/etc/ca.pem"),
            RootCert::File(PathBuf::from("/etc/ca.pem"))
        );
    }
}

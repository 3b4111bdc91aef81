//! `PgStore` over TLS against a real server that the harness configures for it: a CA and a server certificate
//! generated here, `ssl = on`, and a `pg_hba.conf` that accepts only `hostssl`. Each way a connection can be
//! wrong gives an error that names its cause, and none of them repeats the password.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use refresh_manager::conformance::tokens;
use refresh_manager::{CredentialId, StoreError, Swap, TokenStore};
use refresh_postgres::{PgStore, PgStoreOptions};
use support::{Cluster, Setup, keys, psql};

/// The name on the server's certificate; connections reach it through `hostaddr=127.0.0.1`.
const HOST: &str = "db.refresh-kit.test";
/// Sent in every connection string: the server trusts the address, so it is never needed, and it must never be
/// repeated in an error.
const PASSWORD: &str = "pw-7f3c9a-never-in-a-message";

/// A server that speaks only TLS, with the CA that signed its certificate and one that did not.
struct TlsServer {
    cluster: Cluster,
    files: tempfile::TempDir,
}

/// A self-signed CA named `name`.
fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl TlsServer {
    fn start() -> TlsServer {
        let ca = certificate_authority("refresh-kit test CA");
        let other = certificate_authority("some other CA");
        let key = KeyPair::generate().unwrap();
        let certificate = CertificateParams::new(vec![HOST.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let cluster = Cluster::start_with(Setup {
            files: vec![
                ("server.crt", certificate.pem()),
                ("server.key", key.serialize_pem()),
            ],
            hba: Some("hostssl all all 127.0.0.1/32 trust\n".to_owned()),
            settings: vec!["ssl=on".to_owned()],
        });
        let files = tempfile::tempdir().unwrap();
        std::fs::write(files.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(files.path().join("other-ca.pem"), other.pem()).unwrap();
        TlsServer { cluster, files }
    }

    fn ca(&self) -> PathBuf {
        self.files.path().join("ca.pem")
    }

    fn other_ca(&self) -> PathBuf {
        self.files.path().join("other-ca.pem")
    }

    /// A connection string to this server as `host`, with `tls` settings.
    fn url(&self, host: &str, tls: &str) -> String {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres {tls}",
            self.cluster.port()
        )
    }

    fn verified(&self) -> String {
        self.url(
            HOST,
            &format!("sslmode=verify-full sslrootcert={}", self.ca().display()),
        )
    }
}

async fn connect(url: &str) -> Result<PgStore, StoreError> {
    PgStore::connect_with(
        url,
        keys(),
        PgStoreOptions::default().with_lease(Duration::from_secs(30)),
    )
    .await
}

/// The error `url` gives, checked to name no password.
async fn refused(url: &str) -> String {
    let error = connect(url)
        .await
        .expect_err("the connection is refused")
        .to_string();
    assert!(!error.contains(PASSWORD), "the password is in: {error}");
    error
}

/// `verify-full` connects; the pool and the LISTEN connection are both encrypted (the server takes nothing
/// else, and says so in `pg_stat_ssl`), and a waiter is woken by a commit long before the lease would lapse,
/// which only the LISTEN connection can do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_connects_and_waiters_are_woken_over_tls() {
    let server = TlsServer::start();
    let (one, other) = (
        connect(&server.verified()).await.unwrap(),
        connect(&server.verified()).await.unwrap(),
    );
    let id = CredentialId::new("over-tls").unwrap();
    let held = one.lock(&id).await.unwrap();
    let waiter = tokio::spawn({
        let (other, id) = (other.clone(), id.clone());
        async move {
            let lock = other.lock(&id).await;
            (lock, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let committed = Instant::now();
    assert_eq!(
        one.compare_and_swap(&held, None, &tokens("1"))
            .await
            .unwrap(),
        Swap::Written { version: 1 }
    );
    let (woken, at) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken by NOTIFY over TLS, not by the 30 s lease")
        .unwrap();
    woken.unwrap();
    assert!(at.duration_since(committed) < Duration::from_secs(5));
    drop(held);

    // Every connection of the two stores (each: a pool and a listener) is encrypted.
    let connections = psql(
        &server.verified(),
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
           FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'refresh-kit'",
    );
    let (encrypted, plain) = connections.split_once('|').unwrap();
    assert!(
        encrypted.parse::<u32>().unwrap() >= 4,
        "encrypted|plain: {connections}"
    );
    assert_eq!(plain, "0");
}

/// A certificate signed by a CA the client does not trust: the error says the issuer is unknown.
#[tokio::test]
async fn a_wrong_ca_is_refused_with_its_cause() {
    let server = TlsServer::start();
    let url = server.url(
        HOST,
        &format!(
            "sslmode=verify-full sslrootcert={}",
            server.other_ca().display()
        ),
    );
    let error = refused(&url).await;
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(
        error.contains("not signed by a root in sslrootcert"),
        "{error}"
    );
    // verify-ca checks the chain too, and so does require given a root file (libpq's rule).
    for mode in ["verify-ca", "require"] {
        let url = server.url(
            HOST,
            &format!("sslmode={mode} sslrootcert={}", server.other_ca().display()),
        );
        let error = refused(&url).await;
        assert!(error.contains("UnknownIssuer"), "{mode}: {error}");
    }
}

/// A host the certificate does not name fails under `verify-full`, and only there: `verify-ca` checks the chain
/// alone, as in libpq.
#[tokio::test]
async fn a_host_the_certificate_does_not_name_fails_under_verify_full() {
    let server = TlsServer::start();
    let ca = server.ca();
    let wrong_host = |mode: &str| {
        server.url(
            "db.elsewhere.test",
            &format!("sslmode={mode} sslrootcert={}", ca.display()),
        )
    };
    let error = refused(&wrong_host("verify-full")).await;
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(
        error.contains("not valid for name \"db.elsewhere.test\""),
        "{error}"
    );
    assert!(
        error.contains("does not name the host connected to"),
        "{error}"
    );
    connect(&wrong_host("verify-ca"))
        .await
        .expect("verify-ca does not check the name");
}

/// The hostssl-only server refuses a plain connection, and the error says so; `require` without a root
/// encrypts without checking (libpq's meaning), and `prefer` encrypts when the server offers it.
#[tokio::test]
async fn a_plain_connection_to_a_tls_only_server_is_refused_with_its_cause() {
    let server = TlsServer::start();
    let error = refused(&server.url(HOST, "sslmode=disable")).await;
    assert!(error.contains("no pg_hba.conf entry"), "{error}");
    assert!(error.contains("no encryption"), "{error}");
    for mode in ["require", "prefer"] {
        connect(&server.url(HOST, &format!("sslmode={mode}")))
            .await
            .unwrap_or_else(|error| panic!("sslmode={mode}: {error}"));
    }
}

/// A root file that does not exist or holds no certificate is named in the error, before any connection.
#[tokio::test]
async fn an_unusable_root_file_is_named() {
    let server = TlsServer::start();
    let missing = Path::new("/nonexistent/root.pem");
    let error = refused(&server.url(
        HOST,
        &format!("sslmode=verify-full sslrootcert={}", missing.display()),
    ))
    .await;
    assert!(error.contains("/nonexistent/root.pem"), "{error}");
    let empty = server.files.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let error = refused(&server.url(
        HOST,
        &format!("sslmode=verify-full sslrootcert={}", empty.display()),
    ))
    .await;
    assert!(error.contains("no usable certificate"), "{error}");
}

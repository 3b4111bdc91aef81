//! What a connection string says: tokio-postgres reads most of it; the TLS settings it does not read as libpq does
//! (`sslmode`'s `verify-ca` and `verify-full`, `sslrootcert`) are taken out first and read here.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::ConnectionError;
use crate::tls::{self, RootCert, SslMode};

/// A parsed connection string: where to connect, and with which TLS.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: MakeRustlsConnect,
    pub(crate) mode: SslMode,
}

/// The settings this crate reads itself; every other one is tokio-postgres's.
const OURS: [&str; 2] = ["sslmode", "sslrootcert"];

impl Target {
    /// Parses `url` (a `postgres://` URL or a `key=value` string). The store's own connection settings are
    /// added: `application_name` (unless the string sets one) and `statement_timeout`.
    pub(crate) fn parse(url: &str, statement_timeout: Duration) -> Result<Target, ConnectionError> {
        let (rest, settings) = take_ours(url)?;
        let mut config: tokio_postgres::Config =
            rest.parse().map_err(|error| ConnectionError::Setting {
                key: "connection string",
                reason: crate::error::chain(&error),
            })?;
        let mut mode = None;
        let mut root = RootCert::Default;
        for (key, value) in settings {
            match key {
                "sslmode" => mode = Some(SslMode::parse(&value)?),
                _ => root = RootCert::parse(&value),
            }
        }
        let (mode, client) = tls::client_config(mode, &root)?;
        config.ssl_mode(mode.negotiation());
        if config.get_application_name().is_none() {
            config.application_name("refresh-kit");
        }
        // A statement that hangs (a lock never granted, a server stalled) fails instead of outliving the lease.
        let options = format!(
            "{} -c statement_timeout={}",
            config.get_options().unwrap_or_default(),
            statement_timeout.as_millis().max(1)
        );
        config.options(options.trim_start());
        if mode == SslMode::Disable {
            warn_once_if_remote(&config);
        }
        Ok(Target {
            config,
            tls: MakeRustlsConnect::new(client),
            mode,
        })
    }
}

/// `sslmode=disable` to a host off this machine sends the tokens' database password and traffic in the clear.
fn warn_once_if_remote(config: &tokio_postgres::Config) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if is_remote(config) && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "sslmode=disable to a database that is not on this machine: its password and the sealed tokens \
             cross the network unencrypted; use sslmode=verify-full"
        );
    }
}

/// Whether a connection could leave this machine: a TCP host or address that is not loopback.
fn is_remote(config: &tokio_postgres::Config) -> bool {
    config.get_hosts().iter().any(|host| match host {
        Host::Tcp(name) => !is_loopback(name),
        Host::Unix(_) => false,
    }) || config
        .get_hostaddrs()
        .iter()
        .any(|addr| !addr.is_loopback())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A connection string without the settings in [`OURS`], and those settings (decoded).
type Split = (String, Vec<(&'static str, String)>);

/// `url` without the settings in [`OURS`], and those settings (decoded).
fn take_ours(url: &str) -> Result<Split, ConnectionError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(take_from_url(url))
    } else {
        take_from_key_values(url)
    }
}

fn ours(key: &str) -> Option<&'static str> {
    OURS.into_iter().find(|ours| *ours == key)
}

fn take_from_url(url: &str) -> Split {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match ours(key) {
            Some(key) => taken.push((
                key,
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned(),
            )),
            None => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

/// A `key=value` string, split as libpq splits it: values bare or in single quotes, `\` escaping.
fn take_from_key_values(text: &str) -> Result<Split, ConnectionError> {
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConnectionError::Setting {
                key: "connection string",
                reason: format!("{key:?} has no `=` after it"),
            });
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(ConnectionError::Setting {
                            key: "connection string",
                            reason: format!("the value of {key:?} has no closing quote"),
                        });
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        match ours(&key) {
            Some(key) => taken.push((key, value)),
            None => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(url: &str) -> Split {
        take_ours(url).unwrap()
    }

    #[test]
    fn the_tls_settings_are_taken_out_of_a_url_and_the_rest_is_left_as_written() {
        assert_eq!(
            keys(
                "postgres://u:p%40ss@db:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fca%20dir%2Froot.pem"
            ),
            (
                "postgres://u:p%40ss@db:5432/app?application_name=x".to_owned(),
                vec![
                    ("sslmode", "verify-full".to_owned()),
                    ("sslrootcert", "/ca dir/root.pem".to_owned())
                ]
            )
        );
        assert_eq!(
            keys("postgresql://db/app?sslmode=require"),
            (
                "postgresql://db/app".to_owned(),
                vec![("sslmode", "require".to_owned())]
            )
        );
        assert_eq!(
            keys("postgres://db/app"),
            ("postgres://db/app".to_owned(), vec![])
        );
    }

    #[test]
    fn the_tls_settings_are_taken_out_of_a_key_value_string_with_libpq_quoting() {
        let (rest, taken) = keys(
            r"host=db  password = 'it\'s' sslmode= verify-ca sslrootcert='/my certs/ca\'s.pem' options='-c a=b'",
        );
        assert_eq!(
            taken,
            vec![
                ("sslmode", "verify-ca".to_owned()),
                ("sslrootcert", "/my certs/ca's.pem".to_owned())
            ]
        );
        // What is kept parses to the same settings.
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_hosts(), &[Host::Tcp("db".into())]);
        assert_eq!(config.get_options(), Some("-c a=b"));
        assert!(take_ours("host='db").is_err());
        assert!(take_ours("host").is_err());
    }

    #[test]
    fn modes_resolve_as_libpq_resolves_them() {
        let target = |url: &str| Target::parse(url, Duration::from_secs(10));
        assert_eq!(target("host=db").unwrap().mode, SslMode::Prefer);
        assert_eq!(
            target("host=db sslrootcert=system").unwrap().mode,
            SslMode::VerifyFull
        );
        assert_eq!(
            target("host=db sslmode=verify-full sslrootcert=system")
                .unwrap()
                .mode,
            SslMode::VerifyFull
        );
        let weaker = target("host=db sslmode=require sslrootcert=system")
            .err()
            .unwrap();
        assert!(weaker.to_string().contains("verify-full"), "{weaker}");
        let unknown = target("host=db sslmode=allow").err().unwrap();
        assert!(unknown.to_string().contains("\"allow\""), "{unknown}");
        let missing = target("host=db sslmode=verify-ca sslrootcert=/nonexistent/root.crt")
            .err()
            .unwrap();
        assert!(
            missing.to_string().contains("/nonexistent/root.crt"),
            "{missing}"
        );
    }

    #[test]
    fn the_store_names_itself_and_bounds_its_statements() {
        let target =
            Target::parse("host=db options='-c search_path=s'", Duration::from_secs(7)).unwrap();
        assert_eq!(target.config.get_application_name(), Some("refresh-kit"));
        assert_eq!(
            target.config.get_options(),
            Some("-c search_path=s -c statement_timeout=7000")
        );
        let named =
            Target::parse("host=db application_name=billing", Duration::from_secs(7)).unwrap();
        assert_eq!(named.config.get_application_name(), Some("billing"));
    }

    /// Warnings logged while `f` runs, as text.
    fn warnings(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    /// The only test that logs the warning: it is once per process.
    #[test]
    fn disable_to_a_remote_host_warns_once_and_to_this_machine_never() {
        let parse = |url: &str| {
            Target::parse(url, Duration::from_secs(10)).unwrap();
        };
        let local = warnings(|| {
            parse("host=127.0.0.1 sslmode=disable");
            parse("postgres://localhost/app?sslmode=disable");
            parse("host=/run/postgresql sslmode=disable");
        });
        assert_eq!(local, "");
        let first = warnings(|| parse("host=db.internal sslmode=disable password=secret-pw"));
        assert_eq!(
            first.matches("sslmode=disable to a database").count(),
            1,
            "{first}"
        );
        assert!(!first.contains("secret-pw"), "{first}");
        let later = warnings(|| {
            parse("host=10.0.0.7 sslmode=disable");
            parse("host=db.internal sslmode=disable");
        });
        assert_eq!(later, "", "once per process");
    }

    #[test]
    fn a_connection_is_remote_if_any_host_or_address_is_off_this_machine() {
        let remote = |url: &str| is_remote(&url.parse().unwrap());
        assert!(!remote("host=localhost"));
        assert!(!remote("host=/run/postgresql"));
        assert!(!remote("host=localhost hostaddr=127.0.0.1"));
        assert!(remote("host=db.internal"));
        assert!(remote("host=localhost hostaddr=10.0.0.7"));
        assert!(remote("host=localhost,db.internal"));
    }

    #[test]
    fn only_hosts_off_this_machine_are_remote() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("db.internal"));
        assert!(!is_loopback("10.0.0.1"));
    }
}

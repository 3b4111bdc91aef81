//! What `refresh once` and `refresh login` print: one table of JSON keys per outcome. The code builds its JSON
//! from these tables and `--help` lists them, so the two cannot disagree.

use std::fmt::Write;
use std::process::ExitCode;
use std::sync::Arc;

use refresh_facade::{RefreshError, TokenSet, Vendor};
use serde_json::{Map, Value, json};

use crate::exit;
use crate::settings::Misconfigured;

/// Prints the outcome of a refresh or login (success on stdout, failure on stderr) and returns its exit code.
pub fn report(result: Result<TokenSet, RefreshError>) -> ExitCode {
    match result {
        Ok(tokens) => {
            println!("{}", to_json(SUCCESS_KEYS, &tokens));
            exit::code(exit::SUCCESS)
        }
        Err(error) => {
            let code = exit::for_kind(error.kind());
            eprintln!("{}", to_json(FAILURE_KEYS, &Failure::from(error)));
            exit::code(code)
        }
    }
}

/// Prints a configuration that cannot work (nothing was sent) and returns its exit code.
pub fn misconfigured(vendor: Vendor, Misconfigured(message): Misconfigured) -> ExitCode {
    eprintln!(
        "{}",
        to_json(FAILURE_KEYS, &Failure::configuration(vendor, message))
    );
    exit::code(exit::CONFIGURATION)
}

/// Prints why the manager has no token for a profile (as a failure's JSON on stderr) and returns its exit code.
pub fn manager_failure(vendor: Vendor, error: &refresh_manager::ManagerError) -> ExitCode {
    use refresh_manager::ManagerError;
    let (failure, code) = match error {
        ManagerError::Refresh(refused) => {
            let failure = Failure {
                vendor,
                kind: refused.kind().as_str(),
                message: refused.to_string(),
                error: Some(Arc::clone(refused)),
            };
            (failure, exit::for_kind(refused.kind()))
        }
        ManagerError::NotStored(id) => {
            let message = format!(
                "no tokens are stored for {id}: log in first (refresh login {id}), or give the login's \
                         secret to a vendor that logs in by itself (refresh token --help)"
            );
            let failure = Failure {
                vendor,
                kind: "reauthorization_required",
                message,
                error: None,
            };
            (failure, exit::REAUTHORIZATION_REQUIRED)
        }
        // The manager's own outcome name, as `refresh status` and the metrics say it.
        other => {
            let failure = Failure {
                vendor,
                kind: other.outcome(),
                message: other.to_string(),
                error: None,
            };
            (failure, exit::FAILURE)
        }
    };
    eprintln!("{}", to_json(FAILURE_KEYS, &failure));
    exit::code(code)
}

/// A configuration that cannot work before any vendor is known (the profiles file): the message on stderr, and the
/// configuration exit code.
pub fn unconfigured(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    exit::code(exit::CONFIGURATION)
}

/// A command line that cannot work: the message on stderr, and the usage exit code.
pub fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    exit::code(exit::USAGE)
}

/// The output tables and exit codes, as `--help` of a command that does `action` prints them.
pub fn tables_help(action: &str) -> String {
    format!(
        "{}\n{}\n{}",
        help(
            &format!("On success ({action}), one JSON object on stdout:"),
            SUCCESS_KEYS
        ),
        help(
            "On failure, one JSON object on stderr, and the exit code of its kind:",
            FAILURE_KEYS
        ),
        exit::help(),
    )
}

/// One key of the JSON printed for a `T`: its name, what it holds, and how to read it from a `T`.
pub struct Key<T> {
    pub name: &'static str,
    pub meaning: &'static str,
    pub value: fn(&T) -> Value,
}

/// Anomalies as the CLI prints and records them: `[{"kind", "detail"}]`.
pub fn anomalies(anomalies: &[refresh_facade::Anomaly]) -> Value {
    anomalies
        .iter()
        .map(|a| json!({"kind": a.kind(), "detail": a.to_string()}))
        .collect()
}

/// The keys printed on stdout after a refresh.
pub const SUCCESS_KEYS: &[Key<TokenSet>] = &[
    Key {
        name: "vendor",
        meaning: "the vendor",
        value: |t| json!(t.vendor.as_str()),
    },
    Key {
        name: "access_token",
        meaning: "the new access token",
        value: |t| json!(t.access_token.expose_secret()),
    },
    Key {
        name: "refresh_token",
        meaning: "the token to refresh with next time (store it before using the access token)",
        value: |t| json!(t.refresh_token.expose_secret()),
    },
    Key {
        name: "token_type",
        meaning: "the vendor's token type, or null",
        value: |t| json!(t.token_type),
    },
    Key {
        name: "expires_at",
        meaning: "when the access token expires (RFC 3339, UTC)",
        value: |t| {
            json!(
                t.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )
        },
    },
    Key {
        name: "rotated",
        meaning: "whether the vendor issued a new refresh token in place of the one presented",
        value: |t| json!(t.rotated()),
    },
    Key {
        name: "rotation",
        meaning: "rotated, unchanged, carried_over, issued (a login) or not_refreshable (obtain it again)",
        value: |t| json!(t.rotation.as_str()),
    },
    Key {
        name: "anomalies",
        meaning: "what in the vendor's answer did not match its documentation, the tokens having been kept: \
                  [{\"kind\", \"detail\"}], usually []",
        value: |t| anomalies(t.anomalies()),
    },
];

/// A failed run of `refresh once`: a refresh error, or a configuration that cannot work.
pub struct Failure {
    vendor: Vendor,
    kind: &'static str,
    error: Option<Arc<RefreshError>>,
    message: String,
}

impl Failure {
    /// A configuration that cannot work (no request was sent).
    pub fn configuration(vendor: Vendor, message: String) -> Self {
        Failure {
            vendor,
            kind: "configuration",
            error: None,
            message,
        }
    }
}

impl From<RefreshError> for Failure {
    fn from(error: RefreshError) -> Self {
        Failure {
            vendor: error.vendor(),
            kind: error.kind().as_str(),
            message: error.to_string(),
            error: Some(Arc::new(error)),
        }
    }
}

/// The keys printed on stderr after a failure.
pub const FAILURE_KEYS: &[Key<Failure>] = &[
    Key {
        name: "vendor",
        meaning: "the vendor",
        value: |f| json!(f.vendor.as_str()),
    },
    Key {
        name: "kind",
        meaning: "configuration; the manager's outcome (store_error: the token store failed; internal, superseded, short_lived, lease_too_short, wrong_vendor); or the error kind: reauthorization_required, credentials_rejected, invalid_request, transient, malformed_response, component_token_expired, unsupported",
        value: |f| json!(f.kind),
    },
    Key {
        name: "code",
        meaning: "the vendor's own error code as it sent it, or null",
        value: |f| json!(f.error.as_deref().and_then(RefreshError::vendor_code)),
    },
    Key {
        name: "message",
        meaning: "what went wrong (never a token)",
        value: |f| json!(f.message),
    },
    Key {
        name: "retryable",
        meaning: "whether the same refresh may succeed later",
        value: |f| json!(f.error.as_deref().is_some_and(RefreshError::is_retryable)),
    },
    Key {
        name: "http_status",
        meaning: "the HTTP status of the vendor's answer, or null",
        value: |f| json!(f.error.as_deref().and_then(RefreshError::http_status)),
    },
    Key {
        name: "retry_after_secs",
        meaning: "how long the vendor asked to wait, or null",
        value: |f| {
            json!(
                f.error
                    .as_ref()
                    .and_then(|e| e.retry_after())
                    .map(|d| d.as_secs())
            )
        },
    },
    Key {
        name: "request_id",
        meaning: "the vendor's id of the request, for its support, or null",
        value: |f| json!(f.error.as_deref().and_then(RefreshError::request_id)),
    },
];

/// The JSON object of `value` with `keys`, in their order.
pub fn to_json<T>(keys: &[Key<T>], value: &T) -> Value {
    let object: Map<String, Value> = keys
        .iter()
        .map(|key| (key.name.to_owned(), (key.value)(value)))
        .collect();
    Value::Object(object)
}

/// The keys as `--help` lists them.
pub fn help<T>(title: &str, keys: &[Key<T>]) -> String {
    let mut help = format!("{title}\n");
    for key in keys {
        writeln!(help, "  {:<18} {}", key.name, key.meaning).expect("writing to a String");
    }
    help
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_failure_has_every_failure_key() {
        let failure = Failure::configuration(Vendor::Ekuaibao, "no REFRESH_TOKEN".into());
        let printed = to_json(FAILURE_KEYS, &failure);
        assert_eq!(
            printed,
            json!({"vendor": "ekuaibao", "kind": "configuration", "code": null, "message": "no REFRESH_TOKEN",
                   "retryable": false, "http_status": null, "retry_after_secs": null, "request_id": null})
        );
    }

    #[test]
    fn help_lists_every_key_with_its_meaning() {
        let help = help("On failure, stderr:", FAILURE_KEYS);
        assert!(help.starts_with("On failure, stderr:\n"));
        for key in FAILURE_KEYS {
            assert!(
                help.contains(&format!("  {:<18} {}\n", key.name, key.meaning)),
                "{help}"
            );
        }
        assert_eq!(help.lines().count(), FAILURE_KEYS.len() + 1);
    }
}

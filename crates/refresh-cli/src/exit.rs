//! Exit codes: one per kind of failure, so that scripts can act without parsing messages. [`EXIT_CODES`] is the
//! one table: `refresh --help` prints it, and the README's table is checked against it.

use std::fmt::Write;
use std::process::ExitCode;

use refresh_facade::ErrorKind;

pub const SUCCESS: u8 = 0;
/// Anything else: the sandbox could not start, output could not be written, a demo step failed.
pub const FAILURE: u8 = 1;
/// Invalid command-line usage, which clap reports and exits with itself.
pub const USAGE: u8 = 2;
/// The configuration cannot work: a missing credential, an invalid or insecure base URL.
pub const CONFIGURATION: u8 = 3;
pub const REAUTHORIZATION_REQUIRED: u8 = 4;
pub const CREDENTIALS_REJECTED: u8 = 5;
pub const INVALID_REQUEST: u8 = 6;
pub const TRANSIENT: u8 = 7;
pub const MALFORMED_RESPONSE: u8 = 8;
pub const COMPONENT_TOKEN_EXPIRED: u8 = 9;
pub const UNSUPPORTED: u8 = 10;

/// Every exit code and what it means.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (SUCCESS, "success"),
    (
        FAILURE,
        "other failure (the sandbox could not start, a demo step failed)",
    ),
    (USAGE, "invalid usage"),
    (
        CONFIGURATION,
        "configuration error: a missing credential, an invalid base URL, plain http:// to a host that is not loopback (allow with --allow-insecure)",
    ),
    (
        REAUTHORIZATION_REQUIRED,
        "re-authorization required: the refresh token is expired, invalid, revoked or used up",
    ),
    (
        CREDENTIALS_REJECTED,
        "credentials or configuration rejected by the vendor (app key, secret key, appid, company code)",
    ),
    (INVALID_REQUEST, "invalid request"),
    (
        TRANSIENT,
        "transient: timeout, connection error, 5xx, 429, vendor busy; retry later (retry_after_secs)",
    ),
    (
        MALFORMED_RESPONSE,
        "malformed response: the vendor's answer is not what it documents",
    ),
    (
        COMPONENT_TOKEN_EXPIRED,
        "component token expired (wechat-open): obtain a new one and retry at once",
    ),
    (
        UNSUPPORTED,
        "unsupported: the vendor does not offer this (a grant of another vendor)",
    ),
];

/// The exit codes as `--help` prints them.
pub fn help() -> String {
    let mut help = String::from("Exit codes:\n");
    for (code, meaning) in EXIT_CODES {
        writeln!(help, "  {code}  {meaning}").expect("writing to a String");
    }
    help
}

/// The exit code of a refresh that failed with `kind`.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::ReauthorizationRequired => REAUTHORIZATION_REQUIRED,
        ErrorKind::CredentialsRejected => CREDENTIALS_REJECTED,
        ErrorKind::InvalidRequest => INVALID_REQUEST,
        ErrorKind::Transient => TRANSIENT,
        ErrorKind::MalformedResponse => MALFORMED_RESPONSE,
        ErrorKind::ComponentTokenExpired => COMPONENT_TOKEN_EXPIRED,
        ErrorKind::Unsupported => UNSUPPORTED,
        _ => FAILURE,
    }
}

pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_exit_code() {
        let codes: Vec<u8> = ErrorKind::ALL.into_iter().map(for_kind).collect();
        assert_eq!(codes, [4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn the_table_lists_every_code_once_in_order_and_help_prints_it() {
        let codes: Vec<u8> = EXIT_CODES.iter().map(|(code, _)| *code).collect();
        assert_eq!(codes, (0..=10).collect::<Vec<u8>>());
        let help = help();
        for (code, meaning) in EXIT_CODES {
            assert!(help.contains(&format!("  {code}  {meaning}\n")), "{help}");
        }
    }

    /// The README's exit-code table is this table, row for row.
    #[test]
    fn the_readme_lists_the_same_exit_codes() {
        let readme = include_str!("../../../README.md");
        let rows: Vec<String> = readme
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
                match cells.as_slice() {
                    [code, meaning] if code.parse::<u8>().is_ok() => {
                        Some(format!("{code} {meaning}"))
                    }
                    _ => None,
                }
            })
            .collect();
        let table: Vec<String> = EXIT_CODES
            .iter()
            .map(|(code, meaning)| format!("{code} {meaning}"))
            .collect();
        assert_eq!(rows, table);
    }
}

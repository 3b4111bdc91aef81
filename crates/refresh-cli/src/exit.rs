//! Exit codes: one per kind of failure, so that scripts can act without parsing messages.

use std::process::ExitCode;

use refresh_facade::ErrorKind;

pub const SUCCESS: u8 = 0;
/// Anything else: the sandbox could not start, output could not be written, a demo step failed.
pub const FAILURE: u8 = 1;
// 2: invalid command-line usage, which clap reports and exits with itself.
/// The configuration cannot work: a missing credential, an invalid or insecure base URL.
pub const CONFIGURATION: u8 = 3;
pub const REAUTHORIZATION_REQUIRED: u8 = 4;
pub const CREDENTIALS_REJECTED: u8 = 5;
pub const INVALID_REQUEST: u8 = 6;
pub const TRANSIENT: u8 = 7;
pub const MALFORMED_RESPONSE: u8 = 8;

pub const HELP: &str = "\
Exit codes:
  0  success
  1  other failure (the sandbox could not start, a demo step failed)
  2  invalid usage
  3  configuration error (missing credential, invalid or insecure base URL)
  4  re-authorization required (refresh token expired, invalid or revoked: log in again)
  5  credentials or configuration rejected by the vendor (app key, secret, appid, company code)
  6  invalid request
  7  transient failure (timeout, connection, 5xx, 429, vendor busy): retry later
  8  malformed response (the vendor's answer is not what it documents)";

/// The exit code of a refresh that failed with `kind`.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::ReauthorizationRequired => REAUTHORIZATION_REQUIRED,
        ErrorKind::CredentialsRejected => CREDENTIALS_REJECTED,
        ErrorKind::InvalidRequest => INVALID_REQUEST,
        ErrorKind::Transient => TRANSIENT,
        ErrorKind::MalformedResponse => MALFORMED_RESPONSE,
        _ => FAILURE,
    }
}

pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}

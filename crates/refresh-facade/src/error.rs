//! One error type for every vendor's failures, with a small set of kinds a caller can act on.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use progenitor_client::Error as ClientError;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::vendor::Vendor;

/// What a caller should do about a failed refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The refresh token (or the token being renewed) is expired, invalid or revoked: only a new login or
    /// authorization gets tokens again. Retrying does not help.
    ReauthorizationRequired,
    /// The vendor rejected the application's own credentials or configuration (app key, secret key, appid,
    /// company code, component token, permissions, base URL). Fix the configuration; retrying does not help.
    CredentialsRejected,
    /// The vendor rejected the request as malformed or incomplete.
    InvalidRequest,
    /// A passing failure: vendor busy, rate limit, 5xx, timeout, connection error. Retry later (after
    /// [`RefreshError::retry_after`] where the vendor says).
    Transient,
    /// The vendor's answer is not what its documentation describes (HTML, empty, truncated, wrong types,
    /// unknown envelope, too large, redirect). Retrying may help if the vendor is misbehaving briefly.
    MalformedResponse,
}

impl ErrorKind {
    /// The kind's name in snake case (`reauthorization_required`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ReauthorizationRequired => "reauthorization_required",
            ErrorKind::CredentialsRejected => "credentials_rejected",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Transient => "transient",
            ErrorKind::MalformedResponse => "malformed_response",
        }
    }

    /// Whether the same refresh may succeed if tried again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Transient | ErrorKind::MalformedResponse)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed refresh: its [`ErrorKind`], the vendor, and what the vendor said (HTTP status, its own code and
/// message). Never carries a token: vendor messages are scrubbed of the request's secrets, and transport
/// errors lose their URLs (Ekuaibao sends tokens in the query string).
#[derive(Debug)]
#[non_exhaustive]
pub struct RefreshError {
    kind: ErrorKind,
    vendor: Vendor,
    detail: String,
    http_status: Option<u16>,
    vendor_code: Option<String>,
    vendor_message: Option<String>,
    retry_after: Option<Duration>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl RefreshError {
    pub(crate) fn new(vendor: Vendor, kind: ErrorKind, detail: impl Into<String>) -> Self {
        RefreshError {
            kind,
            vendor,
            detail: detail.into(),
            http_status: None,
            vendor_code: None,
            vendor_message: None,
            retry_after: None,
            source: None,
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    pub(crate) fn with_vendor_code(mut self, code: impl Into<String>) -> Self {
        self.vendor_code = Some(code.into());
        self
    }

    /// The vendor's message, scrubbed of the request's secrets by `redactor`.
    pub(crate) fn with_vendor_message(
        mut self,
        message: Option<&str>,
        redactor: &Redactor<'_>,
    ) -> Self {
        self.vendor_message = message.map(|m| redactor.redact(m));
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn vendor(&self) -> Vendor {
        self.vendor
    }
    /// What went wrong, in our words.
    pub fn detail(&self) -> &str {
        &self.detail
    }
    /// The HTTP status of the vendor's answer, if one came.
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }
    /// The vendor's own error code (`result_data.code`, `errcode`, `ErrorType`, `errorCode`, …), if it sent one.
    pub fn vendor_code(&self) -> Option<&str> {
        self.vendor_code.as_deref()
    }
    /// The vendor's own error message, if it sent one.
    pub fn vendor_message(&self) -> Option<&str> {
        self.vendor_message.as_deref()
    }
    /// How long the vendor asked to wait before retrying (HTTP `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
    /// Whether the same refresh may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
    pub fn is_reauthorization_required(&self) -> bool {
        self.kind == ErrorKind::ReauthorizationRequired
    }
    pub fn is_credentials_rejected(&self) -> bool {
        self.kind == ErrorKind::CredentialsRejected
    }
    pub fn is_invalid_request(&self) -> bool {
        self.kind == ErrorKind::InvalidRequest
    }
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
    pub fn is_malformed_response(&self) -> bool {
        self.kind == ErrorKind::MalformedResponse
    }
}

impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} refresh failed ({}): {}",
            self.vendor, self.kind, self.detail
        )?;
        let mut said = Vec::new();
        if let Some(status) = self.http_status {
            said.push(format!("HTTP {status}"));
        }
        match (&self.vendor_code, &self.vendor_message) {
            (Some(code), Some(message)) => said.push(format!("vendor code {code}: {message}")),
            (Some(code), None) => said.push(format!("vendor code {code}")),
            (None, Some(message)) => said.push(format!("vendor message: {message}")),
            (None, None) => {}
        }
        if !said.is_empty() {
            write!(f, " [{}]", said.join("; "))?;
        }
        Ok(())
    }
}

impl StdError for RefreshError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// Replaces the request's secrets in vendor text (some vendors echo parameters in their messages).
pub(crate) struct Redactor<'a> {
    secrets: Vec<&'a str>,
}

impl<'a> Redactor<'a> {
    pub(crate) fn new(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        // Very short "secrets" would redact ordinary words; real tokens are long.
        Redactor {
            secrets: secrets.into_iter().filter(|s| s.len() >= 6).collect(),
        }
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret, "[redacted]")
        })
    }
}

/// One documented vendor error code and what it means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DocumentedCode {
    pub vendor: Vendor,
    /// Where the vendor puts the code (`result_data.code`, `errcode`, HTTP status, …).
    pub field: &'static str,
    pub code: &'static str,
    pub kind: ErrorKind,
    /// The vendor's documented meaning.
    pub meaning: &'static str,
}

/// A vendor's documented codes in one field, and the kind given to a code the vendor never documented.
pub(crate) struct CodeTable {
    pub(crate) vendor: Vendor,
    pub(crate) field: &'static str,
    pub(crate) codes: &'static [(&'static str, ErrorKind, &'static str)],
    pub(crate) undocumented: ErrorKind,
}

impl CodeTable {
    /// The error for `code`, carrying the vendor's code and (scrubbed) message.
    pub(crate) fn error(
        &self,
        code: &str,
        message: Option<&str>,
        status: u16,
        redactor: &Redactor<'_>,
    ) -> RefreshError {
        let (kind, detail) = match self.codes.iter().find(|(c, _, _)| *c == code) {
            Some((_, kind, meaning)) => (*kind, format!("{} {code}: {meaning}", self.field)),
            None => (
                self.undocumented,
                format!("{} {code}, a code the vendor does not document", self.field),
            ),
        };
        RefreshError::new(self.vendor, kind, detail)
            .with_status(status)
            .with_vendor_code(code)
            .with_vendor_message(message, redactor)
    }

    pub(crate) fn documented(&self) -> impl Iterator<Item = DocumentedCode> + '_ {
        self.codes
            .iter()
            .map(|&(code, kind, meaning)| DocumentedCode {
                vendor: self.vendor,
                field: self.field,
                code,
                kind,
                meaning,
            })
    }
}

/// The error for anything but a documented error answer: transport failures, undecodable answers, and HTTP
/// statuses the spec does not list. `documented` handles the statuses the spec lists as errors.
///
/// `decoded` are the statuses the operation decodes (the generated `decoded_statuses`): an undecodable answer
/// came with one of them, so where there is one, it is the answer's status.
pub(crate) fn from_client_error<E>(
    vendor: Vendor,
    decoded: &[u16],
    error: ClientError<E>,
    redactor: &Redactor<'_>,
    documented: impl FnOnce(u16, E) -> RefreshError,
) -> RefreshError {
    match error {
        ClientError::ErrorResponse(answer) => {
            let status = answer.status().as_u16();
            documented(status, answer.into_inner())
        }
        ClientError::UnexpectedResponse(response) => {
            from_status(vendor, response.status(), response.headers())
        }
        ClientError::InvalidResponsePayload(_, decode) => {
            // serde's message can quote the offending value, which may be a token: keep only where it failed.
            let what = match decode.classify() {
                serde_json::error::Category::Eof => "ends early (truncated or empty)",
                serde_json::error::Category::Syntax => "is not JSON",
                serde_json::error::Category::Data => "is JSON of the wrong shape or types",
                serde_json::error::Category::Io => "could not be read",
            };
            let detail = format!(
                "the answer {what} (at line {}, column {}), not the documented format",
                decode.line(),
                decode.column()
            );
            let error = RefreshError::new(vendor, ErrorKind::MalformedResponse, detail);
            match decoded {
                [status] => error.with_status(*status),
                _ => error,
            }
        }
        ClientError::ResponseBodyError(error) => {
            if let Some(too_large) = find_source::<std::io::Error>(&error)
                .filter(|io| io.kind() == std::io::ErrorKind::FileTooLarge)
            {
                let detail = format!("the answer is too large: {too_large}");
                return RefreshError::new(vendor, ErrorKind::MalformedResponse, detail);
            }
            transport(
                vendor,
                "the connection failed while reading the answer",
                error,
            )
        }
        ClientError::CommunicationError(error) => {
            transport(vendor, "the request could not be completed", error)
        }
        ClientError::InvalidRequest(message) => RefreshError::new(
            vendor,
            ErrorKind::InvalidRequest,
            format!("the request cannot be sent: {}", redactor.redact(&message)),
        ),
        ClientError::InvalidUpgrade(error) => {
            transport(vendor, "unexpected protocol upgrade", error)
        }
        ClientError::Custom(message) => RefreshError::new(
            vendor,
            ErrorKind::MalformedResponse,
            redactor.redact(&message),
        ),
    }
}

/// The error for an HTTP status the vendor's spec does not list.
pub(crate) fn from_status(vendor: Vendor, status: StatusCode, headers: &HeaderMap) -> RefreshError {
    let code = status.as_u16();
    let (kind, detail) = match code {
        429 => (ErrorKind::Transient, "rate limited"),
        408 => (
            ErrorKind::Transient,
            "the vendor timed out waiting for the request",
        ),
        500..=599 => (ErrorKind::Transient, "the vendor failed (server error)"),
        401 | 403 => (
            ErrorKind::CredentialsRejected,
            "the vendor refused the application's credentials",
        ),
        404 | 405 => (
            ErrorKind::CredentialsRejected,
            "the base URL does not serve this endpoint (configuration)",
        ),
        300..=399 => (
            ErrorKind::MalformedResponse,
            "the vendor redirected; token requests do not follow redirects",
        ),
        400..=499 => (ErrorKind::InvalidRequest, "the vendor rejected the request"),
        _ => (
            ErrorKind::MalformedResponse,
            "an HTTP status the vendor does not document",
        ),
    };
    RefreshError::new(vendor, kind, detail)
        .with_status(code)
        .with_retry_after(retry_after(headers))
}

fn transport(vendor: Vendor, what: &str, error: reqwest::Error) -> RefreshError {
    let cause = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection error"
    };
    let status = error.status().map(|s| s.as_u16());
    // The URL may carry tokens in its query (Ekuaibao): drop it from the error we keep.
    let mut refresh_error =
        RefreshError::new(vendor, ErrorKind::Transient, format!("{what}: {cause}"))
            .with_source(error.without_url());
    refresh_error.http_status = status;
    refresh_error
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn find_source<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&headers),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn statuses_map_to_kinds() {
        let kind = |code: u16| {
            from_status(
                Vendor::Ekuaibao,
                StatusCode::from_u16(code).unwrap(),
                &HeaderMap::new(),
            )
            .kind()
        };
        assert_eq!(kind(429), ErrorKind::Transient);
        assert_eq!(kind(503), ErrorKind::Transient);
        assert_eq!(kind(401), ErrorKind::CredentialsRejected);
        assert_eq!(kind(404), ErrorKind::CredentialsRejected);
        assert_eq!(kind(302), ErrorKind::MalformedResponse);
        assert_eq!(kind(418), ErrorKind::InvalidRequest);
        assert_eq!(kind(204), ErrorKind::MalformedResponse);
    }

    #[test]
    fn the_redactor_scrubs_secrets_but_not_short_words() {
        let redactor = Redactor::new(["tok-123456", "ab"]);
        assert_eq!(
            redactor.redact("bad token tok-123456 (ab)"),
            "bad token [redacted] (ab)"
        );
    }

    #[test]
    fn display_names_vendor_kind_status_and_vendor_code() {
        let error = RefreshError::new(
            Vendor::WechatOpen,
            ErrorKind::ReauthorizationRequired,
            "errcode 61023: invalid refresh token",
        )
        .with_status(200)
        .with_vendor_code("61023")
        .with_vendor_message(
            Some("invalid refresh_token tok-123456"),
            &Redactor::new(["tok-123456"]),
        );
        assert_eq!(
            error.to_string(),
            "wechat-open refresh failed (reauthorization_required): errcode 61023: invalid refresh token \
             [HTTP 200; vendor code 61023: invalid refresh_token [redacted]]"
        );
        assert!(!error.is_retryable());
        assert!(error.is_reauthorization_required());
    }
}

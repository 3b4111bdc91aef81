//! One error type for every vendor's failures, with a small set of kinds a caller can act on.
//!
//! The error type is here; `codes.rs` holds the shape of the vendors' kind maps (our reading of their codes),
//! `redact.rs` keeps secrets out of vendor text, and `http.rs` maps transport failures and HTTP statuses.

mod codes;
mod http;
mod redact;

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

pub(crate) use codes::{CodeKinds, Said, looks_like_a_code};
pub use codes::{DocumentedCode, documented_error_codes, error_codes_markdown};
pub(crate) use http::from_client_error;
pub(crate) use redact::Redactor;

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
    /// The platform's own short-lived token that the request presented is expired, or no longer the latest
    /// (WeChat's component access token, errcodes 40001, 40014, 42001). The grant is fine: obtain a new
    /// component token ([`crate::Grant::WechatOpenComponentToken`]) and retry at once.
    ComponentTokenExpired,
    /// What was asked is not offered: the grant is for another vendor than the refresher's. Nothing was sent.
    Unsupported,
}

impl ErrorKind {
    /// Every kind, in a stable order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::ReauthorizationRequired,
        ErrorKind::CredentialsRejected,
        ErrorKind::InvalidRequest,
        ErrorKind::Transient,
        ErrorKind::MalformedResponse,
        ErrorKind::ComponentTokenExpired,
        ErrorKind::Unsupported,
    ];

    /// The kind's name in snake case (`reauthorization_required`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ReauthorizationRequired => "reauthorization_required",
            ErrorKind::CredentialsRejected => "credentials_rejected",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Transient => "transient",
            ErrorKind::MalformedResponse => "malformed_response",
            ErrorKind::ComponentTokenExpired => "component_token_expired",
            ErrorKind::Unsupported => "unsupported",
        }
    }

    /// Whether the same refresh may succeed if tried again later, unchanged. A
    /// [`ErrorKind::ComponentTokenExpired`] is not: it succeeds at once, but with a new component token.
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
/// message, its request id). Never carries a token: vendor messages are scrubbed of the request's secrets, and
/// transport errors lose their URLs (Ekuaibao sends tokens in the query string).
/// A call to a vendor: what a [`RefreshError`] says failed, and the `operation` of the manager's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Call {
    /// [`crate::Refresher::refresh`]: a refresh token (Sugon AC: the token itself) for new tokens.
    Refresh,
    /// [`crate::Refresher::obtain`]: a login, from a grant.
    Login,
}

impl Call {
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Refresh => "refresh",
            Call::Login => "login",
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
#[non_exhaustive]
pub struct RefreshError {
    /// Boxed: a `Result<_, RefreshError>` stays two words wide on every happy path.
    inner: Box<Details>,
}

#[derive(Debug)]
struct Details {
    kind: ErrorKind,
    /// What failed.
    during: Call,
    vendor: crate::Vendor,
    detail: String,
    http_status: Option<u16>,
    vendor_code: Option<String>,
    vendor_message: Option<String>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl RefreshError {
    pub(crate) fn new(vendor: crate::Vendor, kind: ErrorKind, detail: impl Into<String>) -> Self {
        RefreshError {
            inner: Box::new(Details {
                kind,
                during: Call::Refresh,
                vendor,
                detail: detail.into(),
                http_status: None,
                vendor_code: None,
                vendor_message: None,
                request_id: None,
                retry_after: None,
                source: None,
            }),
        }
    }

    /// A call to `vendor` that was given up after `after` (a caller's deadline, such as a token manager's
    /// [`crate::Refresher::call_timeout`]): transient, and the vendor may or may not have handled it.
    pub fn timed_out(vendor: crate::Vendor, after: Duration) -> Self {
        RefreshError::new(
            vendor,
            ErrorKind::Transient,
            format!(
                "no answer within {} ms: the call was given up",
                after.as_millis()
            ),
        )
    }

    /// The same error, read as `kind` for the reason `detail` gives (evidence the code alone does not carry).
    pub(crate) fn with_kind(mut self, kind: ErrorKind, detail: impl Into<String>) -> Self {
        self.inner.kind = kind;
        self.inner.detail = detail.into();
        self
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = detail.into();
        self
    }

    /// The call that failed.
    pub fn call(&self) -> Call {
        self.inner.during
    }

    /// Marks an error of [`crate::Refresher::obtain`] (a login, not a refresh).
    pub fn during_login(mut self) -> Self {
        self.inner.during = Call::Login;
        self
    }

    pub(crate) fn with_status(mut self, status: impl Into<Option<u16>>) -> Self {
        self.inner.http_status = status.into();
        self
    }

    /// The code exactly as the vendor sent it (never an HTTP status: that is [`RefreshError::http_status`]).
    pub(crate) fn with_vendor_code(mut self, code: impl Into<String>) -> Self {
        self.inner.vendor_code = Some(code.into());
        self
    }

    /// The vendor's message, scrubbed of the request's secrets by `redactor`.
    pub(crate) fn with_vendor_message(
        mut self,
        message: Option<&str>,
        redactor: &Redactor<'_>,
    ) -> Self {
        self.inner.vendor_message = message.map(|m| redactor.redact(m));
        self
    }

    /// The id the vendor gave the request, for its support (iSolarCloud `req_serial_num`, WeChat's `rid`).
    pub(crate) fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.inner.request_id = request_id.filter(|id| !id.trim().is_empty());
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.inner.retry_after = retry_after;
        self
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }
    pub fn vendor(&self) -> crate::Vendor {
        self.inner.vendor
    }
    /// What went wrong, in our words.
    pub fn detail(&self) -> &str {
        &self.inner.detail
    }
    /// The HTTP status of the vendor's answer, if one came.
    pub fn http_status(&self) -> Option<u16> {
        self.inner.http_status
    }
    /// The error code the vendor sent (`result_data.code`, `errcode`, `ErrorType`, `errorCode`, …), exactly as
    /// it sent it; `None` when it sent none. An HTTP status is never a vendor code: see [`Self::http_status`].
    pub fn vendor_code(&self) -> Option<&str> {
        self.inner.vendor_code.as_deref()
    }
    /// The vendor's own error message, if it sent one (scrubbed of the request's secrets).
    pub fn vendor_message(&self) -> Option<&str> {
        self.inner.vendor_message.as_deref()
    }
    /// The id the vendor gave the request, to quote to its support: iSolarCloud's `req_serial_num`, the `rid`
    /// in WeChat's `errmsg`. `None` where the vendor sends none.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }
    /// How long the vendor asked to wait before retrying (HTTP `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }
    /// Whether the same refresh may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        self.inner.kind.is_retryable()
    }
    pub fn is_reauthorization_required(&self) -> bool {
        self.inner.kind == ErrorKind::ReauthorizationRequired
    }
    pub fn is_credentials_rejected(&self) -> bool {
        self.inner.kind == ErrorKind::CredentialsRejected
    }
    pub fn is_invalid_request(&self) -> bool {
        self.inner.kind == ErrorKind::InvalidRequest
    }
    pub fn is_transient(&self) -> bool {
        self.inner.kind == ErrorKind::Transient
    }
    pub fn is_malformed_response(&self) -> bool {
        self.inner.kind == ErrorKind::MalformedResponse
    }
    /// True when a new component token (WeChat) makes the same call succeed: renew it and retry at once.
    pub fn is_component_token_expired(&self) -> bool {
        self.inner.kind == ErrorKind::ComponentTokenExpired
    }
    pub fn is_unsupported(&self) -> bool {
        self.inner.kind == ErrorKind::Unsupported
    }
}

impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} failed ({}): {}",
            self.inner.vendor, self.inner.during, self.inner.kind, self.inner.detail
        )?;
        let mut said = Vec::new();
        if let Some(status) = self.inner.http_status {
            said.push(format!("HTTP {status}"));
        }
        match (&self.inner.vendor_code, &self.inner.vendor_message) {
            (Some(code), Some(message)) => said.push(format!("vendor code {code}: {message}")),
            (Some(code), None) => said.push(format!("vendor code {code}")),
            (None, Some(message)) => said.push(format!("vendor message: {message}")),
            (None, None) => {}
        }
        if let Some(id) = &self.inner.request_id {
            said.push(format!("request id {id}"));
        }
        if !said.is_empty() {
            write!(f, " [{}]", said.join("; "))?;
        }
        Ok(())
    }
}

impl StdError for RefreshError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vendor;

    fn error(kind: ErrorKind) -> RefreshError {
        RefreshError::new(Vendor::WechatOpen, kind, "detail")
    }

    /// Each public `is_*` helper answers for its own kind and no other; `is_retryable` for exactly the transient
    /// and malformed kinds.
    #[test]
    fn each_is_helper_names_exactly_its_kind() {
        for kind in ErrorKind::ALL {
            let e = error(kind);
            let helpers = [
                (
                    ErrorKind::ReauthorizationRequired,
                    e.is_reauthorization_required(),
                ),
                (ErrorKind::CredentialsRejected, e.is_credentials_rejected()),
                (ErrorKind::InvalidRequest, e.is_invalid_request()),
                (ErrorKind::Transient, e.is_transient()),
                (ErrorKind::MalformedResponse, e.is_malformed_response()),
                (
                    ErrorKind::ComponentTokenExpired,
                    e.is_component_token_expired(),
                ),
                (ErrorKind::Unsupported, e.is_unsupported()),
            ];
            for (named, answer) in helpers {
                assert_eq!(answer, named == kind, "is_{named} on {kind}");
            }
            let retryable = matches!(kind, ErrorKind::Transient | ErrorKind::MalformedResponse);
            assert_eq!(e.is_retryable(), retryable, "{kind}");
            assert_eq!(kind.is_retryable(), retryable, "{kind}");
        }
    }

    #[test]
    fn display_names_vendor_kind_status_vendor_code_and_request_id() {
        let error = error(ErrorKind::ReauthorizationRequired)
            .with_status(200)
            .with_vendor_code("61023")
            .with_vendor_message(
                Some("invalid refresh_token tok-123456"),
                &Redactor::new(["tok-123456"]),
            )
            .with_request_id(Some("6571f2a1-0b1c".into()));
        assert_eq!(
            error.to_string(),
            "wechat-open refresh failed (reauthorization_required): detail \
             [HTTP 200; vendor code 61023: invalid refresh_token [redacted]; request id 6571f2a1-0b1c]"
        );
        assert_eq!(error.request_id(), Some("6571f2a1-0b1c"));
        assert_eq!(error.vendor_code(), Some("61023"));
        assert_eq!(error.http_status(), Some(200));
    }

    #[test]
    fn display_says_only_what_is_known() {
        assert_eq!(
            error(ErrorKind::Transient).to_string(),
            "wechat-open refresh failed (transient): detail"
        );
        let message_only = error(ErrorKind::Transient)
            .with_vendor_message(Some("busy"), &Redactor::new(None::<&str>));
        assert_eq!(
            message_only.to_string(),
            "wechat-open refresh failed (transient): detail [vendor message: busy]"
        );
        let code_only = error(ErrorKind::Transient).with_vendor_code("-1");
        assert_eq!(
            code_only.to_string(),
            "wechat-open refresh failed (transient): detail [vendor code -1]"
        );
        let blank_id = error(ErrorKind::Transient).with_request_id(Some("  ".into()));
        assert_eq!(blank_id.request_id(), None);
    }

    #[test]
    fn an_error_names_the_call_that_failed() {
        let refresh = error(ErrorKind::Transient);
        assert_eq!(refresh.call(), Call::Refresh);
        let login = error(ErrorKind::Transient).during_login();
        assert_eq!(login.call(), Call::Login);
        assert_eq!(
            login.to_string(),
            "wechat-open login failed (transient): detail"
        );
        assert_eq!(
            (Call::Refresh.to_string(), Call::Login.as_str()),
            ("refresh".to_owned(), "login")
        );
    }

    #[test]
    fn kinds_have_stable_snake_case_names() {
        let names: Vec<String> = ErrorKind::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "reauthorization_required",
                "credentials_rejected",
                "invalid_request",
                "transient",
                "malformed_response",
                "component_token_expired",
                "unsupported"
            ]
        );
        for kind in ErrorKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
    }

    #[test]
    fn the_source_is_kept_for_callers_that_walk_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let error = error(ErrorKind::Transient).with_source(io);
        let source = StdError::source(&error).expect("a source");
        assert_eq!(source.to_string(), "slow");
        assert!(StdError::source(&super::tests::error(ErrorKind::Transient)).is_none());
    }
}

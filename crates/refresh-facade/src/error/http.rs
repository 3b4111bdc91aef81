//! Failures that are not a vendor's documented answer: transport errors, undecodable answers, and HTTP statuses
//! the spec does not list. One mapping for every vendor.

use std::error::Error as StdError;
use std::time::Duration;

use progenitor_client::Error as ClientError;
use refresh_runtime::Operation;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{ErrorKind, Redactor, RefreshError};
use crate::vendor::Vendor;

/// The error for a failed call of `operation`. `documented` reads the answers the spec documents for error
/// statuses; everything else (transport, undecodable answers, statuses the spec does not list) is mapped here.
pub(crate) fn from_client_error<E>(
    vendor: Vendor,
    operation: &Operation,
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
            // progenitor does not keep the status; where the operation decodes one status only, it is that one.
            RefreshError::new(vendor, ErrorKind::MalformedResponse, detail)
                .with_status(operation.only_decoded_status())
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
    RefreshError::new(vendor, ErrorKind::Transient, format!("{what}: {cause}"))
        .with_status(status)
        .with_source(error.without_url())
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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
        let later =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
        headers.insert(RETRY_AFTER, later.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(3500) && wait <= Duration::from_secs(3600),
            "{wait:?}"
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
        for (status, expected) in [
            (429, ErrorKind::Transient),
            (408, ErrorKind::Transient),
            (500, ErrorKind::Transient),
            (503, ErrorKind::Transient),
            (599, ErrorKind::Transient),
            (401, ErrorKind::CredentialsRejected),
            (403, ErrorKind::CredentialsRejected),
            (404, ErrorKind::CredentialsRejected),
            (405, ErrorKind::CredentialsRejected),
            (300, ErrorKind::MalformedResponse),
            (302, ErrorKind::MalformedResponse),
            (399, ErrorKind::MalformedResponse),
            (400, ErrorKind::InvalidRequest),
            (418, ErrorKind::InvalidRequest),
            (499, ErrorKind::InvalidRequest),
            (204, ErrorKind::MalformedResponse),
            (600, ErrorKind::MalformedResponse),
        ] {
            assert_eq!(kind(status), expected, "HTTP {status}");
        }
    }

    /// Statuses of one kind still say which case they are.
    #[test]
    fn statuses_say_what_they_mean() {
        let detail = |code: u16| {
            from_status(
                Vendor::Ekuaibao,
                StatusCode::from_u16(code).unwrap(),
                &HeaderMap::new(),
            )
            .detail()
            .to_owned()
        };
        assert!(detail(302).contains("redirected"), "{}", detail(302));
        assert!(detail(204).contains("does not document"), "{}", detail(204));
        assert!(detail(404).contains("base URL"), "{}", detail(404));
        assert!(detail(401).contains("credentials"), "{}", detail(401));
        assert!(detail(408).contains("timed out"), "{}", detail(408));
        assert!(detail(429).contains("rate limited"), "{}", detail(429));
    }

    #[test]
    fn a_status_error_keeps_the_status_and_the_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        let error = from_status(Vendor::SugonAc, StatusCode::TOO_MANY_REQUESTS, &headers);
        assert_eq!(error.http_status(), Some(429));
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(error.vendor_code(), None);
    }
}

//! Faults a test can inject into the next answers of an emulator.

use std::time::Duration;

/// One injected fault; each applies to one request, in the order injected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// Answer with this HTTP status and no body (a proxy's 5xx, a 429), with `Retry-After` in seconds if given.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Handle the request (so a rotation is committed), then drop the connection instead of answering.
    DropAfterCommit,
    /// Answer HTTP 200 with this body instead.
    Malformed { content_type: String, body: String },
}

impl Fault {
    pub fn server_error(status: u16) -> Fault {
        Fault::Status {
            status,
            retry_after: None,
        }
    }

    pub fn rate_limited(retry_after_seconds: u64) -> Fault {
        Fault::Status {
            status: 429,
            retry_after: Some(retry_after_seconds),
        }
    }

    pub fn html_page() -> Fault {
        Fault::Malformed {
            content_type: "text/html".into(),
            body: "<html><body>502 Bad Gateway</body></html>".into(),
        }
    }
}

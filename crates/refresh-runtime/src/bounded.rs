//! Reading at most a bounded number of bytes of an answer.
//!
//! progenitor reads whole bodies into memory, and a token answer is a few hundred bytes, so a larger body is a
//! broken or hostile server, not a token.

use std::pin::Pin;
use std::task::{Context, Poll};

/// The most bytes of a response body a generated client reads. A call whose answer is larger fails with
/// progenitor's `Error::ResponseBodyError`, whose source is a [`std::io::Error`] of kind
/// [`std::io::ErrorKind::FileTooLarge`].
pub const MAX_RESPONSE_BODY_BYTES: usize = 1024 * 1024;

/// Reads at most `limit` bytes of `response`'s body and returns a response with the same head and that body, or
/// with a body that fails to read when the server sends (or announces) more.
pub async fn read_bounded(
    response: reqwest::Response,
    limit: usize,
) -> reqwest::Result<reqwest::Response> {
    read_bounded_marking(response, limit, |_, _| None::<()>).await
}

/// [`read_bounded`], with the extension `mark` gives the read body (if it was within the limit) and the status.
pub(crate) async fn read_bounded_marking<M: Clone + Send + Sync + 'static>(
    mut response: reqwest::Response,
    limit: usize,
    mark: impl FnOnce(u16, &[u8]) -> Option<M>,
) -> reqwest::Result<reqwest::Response> {
    let status = response.status().as_u16();
    let mut head = http::Response::builder()
        .status(response.status())
        .version(response.version());
    if let Some(headers) = head.headers_mut() {
        *headers = response.headers().clone();
    }
    let mut too_large = response
        .content_length()
        .is_some_and(|length| length > limit as u64);
    let mut body = Vec::new();
    while !too_large && let Some(chunk) = response.chunk().await? {
        too_large = body.len() + chunk.len() > limit;
        body.extend_from_slice(&chunk[..chunk.len().min(limit.saturating_sub(body.len()))]);
    }
    let body = if too_large {
        reqwest::Body::wrap_stream(BodyTooLarge {
            limit,
            reported: false,
        })
    } else {
        if let Some(mark) = mark(status, &body) {
            head = head.extension(mark);
        }
        reqwest::Body::from(body)
    };
    // The head comes from a valid response, so building it again cannot fail.
    let rebuilt = head
        .body(body)
        .expect("status, version and headers of a received response are valid");
    Ok(reqwest::Response::from(rebuilt))
}

/// A body that fails to read once, with [`std::io::ErrorKind::FileTooLarge`].
struct BodyTooLarge {
    limit: usize,
    reported: bool,
}

impl futures_core::Stream for BodyTooLarge {
    type Item = Result<Vec<u8>, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.reported {
            return Poll::Ready(None);
        }
        self.reported = true;
        let message = format!("the response body exceeds {} bytes", self.limit);
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            message,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &'static [u8]) -> reqwest::Response {
        let builder = http::Response::builder()
            .status(201)
            .header("x-request-id", "r-1");
        reqwest::Response::from(builder.body(reqwest::Body::from(body)).unwrap())
    }

    fn too_large(error: &reqwest::Error) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                return io.kind() == std::io::ErrorKind::FileTooLarge;
            }
            source = error.source();
        }
        false
    }

    /// The bound the crates document ("bodies over 1 MiB are not read").
    #[test]
    fn the_documented_bound_is_one_mebibyte() {
        assert_eq!(MAX_RESPONSE_BODY_BYTES, 1 << 20);
    }

    #[tokio::test]
    async fn a_body_within_the_limit_keeps_its_head_and_bytes() {
        let read = read_bounded(response(b"0123456789"), 10).await.unwrap();
        assert_eq!(read.status(), 201);
        assert_eq!(read.headers()["x-request-id"], "r-1");
        assert_eq!(read.bytes().await.unwrap().as_ref(), b"0123456789");
    }

    #[tokio::test]
    async fn one_byte_over_the_limit_fails_to_read() {
        let read = read_bounded(response(b"01234567890"), 10).await.unwrap();
        assert_eq!(read.status(), 201, "the head is kept");
        let error = read.bytes().await.unwrap_err();
        assert!(too_large(&error), "{error:?}");
    }

    // An announced Content-Length over the limit needs a real connection (a built response's length is its
    // body's): tests/wire/bounded_body.rs covers it over TCP.

    #[tokio::test]
    async fn the_failing_body_reports_once_and_names_the_limit() {
        use futures_core::Stream;
        let mut body = BodyTooLarge {
            limit: 7,
            reported: false,
        };
        let waker = std::task::Waker::noop();
        let mut context = Context::from_waker(waker);
        match Pin::new(&mut body).poll_next(&mut context) {
            Poll::Ready(Some(Err(error))) => {
                assert_eq!(error.kind(), std::io::ErrorKind::FileTooLarge);
                assert_eq!(error.to_string(), "the response body exceeds 7 bytes");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Pin::new(&mut body).poll_next(&mut context),
            Poll::Ready(None)
        ));
    }
}

//! The vendor's clock, as the `Date` header of its answer states it (RFC 9110 §6.6.1: every origin server with a
//! clock sends one). A replica whose own wall clock is wrong writes wrong absolute expiries into a shared store,
//! and other replicas then serve tokens past their real end; the vendor's `Date` tells how far off we are.
//!
//! The header is read where every vendor's answer passes ([`note`], in the shared send step) and handed to the
//! [`Refresher`](crate::Refresher) that awaited the call ([`observed`]) through a task-local slot, so that no
//! vendor's code carries it.

use std::cell::Cell;
use std::future::Future;

use chrono::{DateTime, Utc};

tokio::task_local! {
    static ANSWERED: Cell<Option<DateTime<Utc>>>;
}

/// Notes the `Date` of an answer, for the [`observed`] call it belongs to (outside one, nothing happens).
pub(crate) fn note(headers: &reqwest::header::HeaderMap) {
    let date = headers
        .get(reqwest::header::DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| httpdate::parse_http_date(text).ok())
        .map(DateTime::<Utc>::from);
    if let Some(date) = date {
        let _ = ANSWERED.try_with(|slot| slot.set(Some(date)));
    }
}

/// Runs `call`; what it returned, and the `Date` of the last answer it received, if one was readable.
pub(crate) async fn observed<T>(call: impl Future<Output = T>) -> (T, Option<DateTime<Utc>>) {
    ANSWERED
        .scope(Cell::new(None), async {
            let output = call.await;
            (output, ANSWERED.with(Cell::get))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_date_of_an_answer_reaches_the_call_that_awaited_it() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::DATE,
            "Sun, 06 Dec 2026 09:00:00 GMT".parse().unwrap(),
        );
        let ((), date) = observed(async { note(&headers) }).await;
        assert_eq!(date.unwrap().to_rfc3339(), "2026-12-06T09:00:00+00:00");
        let ((), none) = observed(async {}).await;
        assert_eq!(none, None);
        headers.insert(reqwest::header::DATE, "yesterday".parse().unwrap());
        let ((), unreadable) = observed(async { note(&headers) }).await;
        assert_eq!(unreadable, None, "an unreadable Date says nothing");
        note(&headers); // outside a call: nothing to note, and no panic
    }
}

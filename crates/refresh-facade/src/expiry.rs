//! Every vendor's way of saying when a token expires, turned into one instant.

use chrono::{DateTime, TimeDelta, Utc};

use crate::token::ExpirySource;

/// The lifetime assumed when a vendor says nothing readable about expiry: short, so that a token manager
/// refreshes early rather than using an expired token. Never "never expires".
pub const CONSERVATIVE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The longest lifetime believed: a larger one is treated as unreadable (a unit mistake, or garbage).
const LONGEST_BELIEVABLE: TimeDelta = TimeDelta::days(400);

/// What a vendor said about expiry.
#[derive(Debug)]
pub(crate) enum ExpiryHint {
    /// Seconds from when the request was sent.
    Seconds(i64),
    /// Seconds, as a string (iSolarCloud documents `expires_in` as a String).
    SecondsText(String),
    /// An RFC 3339 instant (MISA: 7 fractional digits and an offset).
    Rfc3339(String),
    /// Milliseconds since the epoch (Ekuaibao's `expireTime`).
    EpochMillis(i64),
    /// Milliseconds since the epoch as a string, from a token's claim (Sugon AC's JWT `expireTime`).
    ClaimMillis(String),
    /// Nothing.
    Absent,
}

/// The instant the hint names, or the conservative default when it names none that can be believed. An
/// unreadable expiry never fails a refresh: the vendor may already have rotated the refresh token, and failing
/// would lose the new one. A non-positive lifetime, or one over 400 days, counts as unreadable; an absolute
/// instant in the past is believed (the vendor says the token is expired).
pub(crate) fn resolve(hint: ExpiryHint, sent_at: DateTime<Utc>) -> (DateTime<Utc>, ExpirySource) {
    let stated = !matches!(hint, ExpiryHint::Absent);
    let resolved = match hint {
        ExpiryHint::Seconds(seconds) => {
            after(sent_at, seconds).map(|at| (at, ExpirySource::LifetimeSeconds))
        }
        ExpiryHint::SecondsText(text) => text
            .trim()
            .parse()
            .ok()
            .and_then(|seconds| after(sent_at, seconds))
            .map(|at| (at, ExpirySource::LifetimeSeconds)),
        ExpiryHint::Rfc3339(text) => DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|at| (at.with_timezone(&Utc), ExpirySource::VendorInstant)),
        ExpiryHint::EpochMillis(millis) => {
            DateTime::from_timestamp_millis(millis).map(|at| (at, ExpirySource::VendorInstant))
        }
        ExpiryHint::ClaimMillis(text) => text
            .trim()
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .map(|at| (at, ExpirySource::TokenClaim)),
        ExpiryHint::Absent => None,
    };
    match resolved {
        Some((at, source)) if at - sent_at <= LONGEST_BELIEVABLE => (at, source),
        _ => {
            if stated {
                tracing::warn!(
                    "the vendor's expiry cannot be read or believed; assuming the conservative default"
                );
            }
            (
                sent_at + conservative_lifetime(),
                ExpirySource::ConservativeDefault,
            )
        }
    }
}

fn after(sent_at: DateTime<Utc>, seconds: i64) -> Option<DateTime<Utc>> {
    if seconds <= 0 {
        return None;
    }
    sent_at.checked_add_signed(TimeDelta::try_seconds(seconds)?)
}

fn conservative_lifetime() -> TimeDelta {
    TimeDelta::from_std(CONSERVATIVE_LIFETIME).unwrap_or(TimeDelta::minutes(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExpiryHint::*;

    fn sent() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn seconds_count_from_when_the_request_was_sent() {
        assert_eq!(
            resolve(Seconds(172_799), sent()),
            (at("2026-11-24T09:59:59Z"), ExpirySource::LifetimeSeconds)
        );
    }

    #[test]
    fn seconds_as_a_string_are_the_same_as_a_number() {
        assert_eq!(
            resolve(SecondsText("172799".into()), sent()),
            resolve(Seconds(172_799), sent())
        );
        assert_eq!(
            resolve(SecondsText(" 7200 ".into()), sent()).0,
            at("2026-11-22T12:00:00Z")
        );
    }

    #[test]
    fn seven_fractional_digits_and_an_offset_are_read_exactly() {
        let (expires, source) =
            resolve(Rfc3339("2026-11-23T18:44:15.6186183+07:00".into()), sent());
        assert_eq!(source, ExpirySource::VendorInstant);
        assert_eq!(
            expires.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "2026-11-23T11:44:15.618618300Z"
        );
    }

    #[test]
    fn six_fractional_digits_and_no_fraction_work_too() {
        assert_eq!(
            resolve(Rfc3339("2026-11-23T18:44:15.618329+07:00".into()), sent())
                .0
                .timestamp_micros()
                % 1_000_000,
            618_329
        );
        assert_eq!(
            resolve(Rfc3339("2026-11-23T11:44:15Z".into()), sent()).0,
            at("2026-11-23T11:44:15Z")
        );
    }

    #[test]
    fn epoch_milliseconds_are_an_absolute_instant_even_in_the_past() {
        // Ekuaibao's documentation sample: an instant in January 2022, before `sent()`.
        let (expires, source) = resolve(EpochMillis(1_641_626_383_724), sent());
        assert_eq!(expires, at("2022-01-08T07:19:43.724Z"));
        assert_eq!(source, ExpirySource::VendorInstant);
    }

    #[test]
    fn a_claim_in_milliseconds_as_a_string_is_read() {
        let (expires, source) = resolve(
            ClaimMillis("1686908509231".into()),
            at("2023-06-16T00:00:00Z"),
        );
        assert_eq!(
            (expires, source),
            (at("2023-06-16T09:41:49.231Z"), ExpirySource::TokenClaim)
        );
    }

    #[test]
    fn unreadable_or_unbelievable_expiry_falls_back_to_the_conservative_default() {
        let default = (
            sent() + TimeDelta::minutes(10),
            ExpirySource::ConservativeDefault,
        );
        for hint in [
            Absent,
            SecondsText("soon".into()),
            SecondsText("".into()),
            Seconds(0),
            Seconds(-5),
            Seconds(i64::MAX),
            Seconds(401 * 24 * 3600),
            Rfc3339("2026-13-45T99:00:00+07:00".into()),
            Rfc3339("yesterday".into()),
            EpochMillis(i64::MAX),
            ClaimMillis("not-a-number".into()),
        ] {
            let label = format!("{hint:?}");
            assert_eq!(resolve(hint, sent()), default, "{label}");
        }
    }
}

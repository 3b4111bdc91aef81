//! What the manager tells the service: a hook on each rotation, and metrics through the `metrics` facade (the
//! service installs the exporter it wants). Neither carries a secret: names, vendors, versions, instants and
//! outcomes only.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use refresh_facade::{Call, Vendor};

use crate::record::CredentialId;

/// Counter of calls to the vendor (refreshes and logins), by `vendor`, `operation` (`refresh`, `login`) and
/// `outcome` (`ok` or the error kind).
pub const VENDOR_CALLS: &str = "refresh_kit_vendor_calls_total";
/// Histogram of the vendor calls' latency in seconds, with the same labels.
pub const VENDOR_CALL_SECONDS: &str = "refresh_kit_vendor_call_seconds";
/// Counter of renewals (one shared refresh, whatever it took), by `vendor` and `outcome`: `refreshed`,
/// `logged_in`, `from_store` (another process had stored fresher tokens), `orphaned` (our tokens lost the
/// compare-and-swap and were kept as an orphan), or the error's outcome ([`crate::ManagerError::outcome`]).
pub const RENEWALS: &str = "refresh_kit_renewals_total";

/// Counter of odd answers, by `vendor` and `anomaly`: what the manager guarded against ([`Anomaly::as_str`]), and
/// what in an answer the facade found undocumented while keeping its tokens
/// ([`refresh_facade::Anomaly::kind`]: `undocumented_types`, `token_not_text`, `no_readable_expiry`, …).
pub const ANOMALIES: &str = "refresh_kit_anomalies_total";

/// An answer the manager did not take as it came, because taking it would loop or stall a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anomaly {
    /// Tokens due again before [`crate::RefreshPolicy::minimum_interval`] had passed (a lifetime of seconds, or an
    /// expiry already past): the next renewal waits for that interval.
    ShortLifetime,
    /// A `Retry-After` longer than the backoff's maximum: the manager waits the maximum.
    RetryAfterCapped,
    /// Stored tokens obtained later than this process's wall clock says it is (by more than the allowed skew): the
    /// writer's clock ran ahead, or this one went back, and the token's age is unknown; it is renewed at once.
    ObtainedInTheFuture,
    /// The vendor's clock (its answer's `Date`) and this process's wall clock disagreed by more than the allowed
    /// skew: the tokens were stored on the vendor's clock, which their expiry follows, so that replicas whose clocks
    /// are right read them right. Look at this machine's clock (NTP).
    ClockOffTheVendors,
}

impl Anomaly {
    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::ShortLifetime => "short_lifetime",
            Anomaly::RetryAfterCapped => "retry_after_capped",
            Anomaly::ObtainedInTheFuture => "obtained_in_the_future",
            Anomaly::ClockOffTheVendors => "clock_off_the_vendors",
        }
    }
}

/// A credential's new tokens are durable: what [`crate::ManagerOptions::on_rotate`] hooks receive. No token is in
/// it. Tokens that lost the store's compare-and-swap to another writer are durable too, as an orphan beside the
/// other writer's record ([`Rotated::kept_as_orphan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotated {
    pub id: CredentialId,
    pub vendor: Vendor,
    /// The store record's new version (for an orphan: the version of the record it was kept beside).
    pub version: u64,
    pub expires_at: DateTime<Utc>,
    /// Whether they came from a login (`obtain`) rather than a refresh.
    pub by_login: bool,
    /// What in the vendor's answer did not match its documentation, its tokens having been kept (empty for an
    /// answer as documented, and for tokens rescued by an earlier process, whose anomalies were said then).
    pub anomalies: Vec<refresh_facade::Anomaly>,
    /// Another writer stored tokens first: these were kept as an orphan of its record, and are not served. An
    /// operator may want to know (two writers renewed one credential).
    pub kept_as_orphan: bool,
}

pub(crate) type RotateHook = Arc<dyn Fn(&Rotated) + Send + Sync>;

/// How a renewal ended well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Renewed {
    Refreshed,
    LoggedIn,
    FromStore,
    Orphaned,
}

impl Renewed {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Renewed::Refreshed => "refreshed",
            Renewed::LoggedIn => "logged_in",
            Renewed::FromStore => "from_store",
            Renewed::Orphaned => "orphaned",
        }
    }
}

pub(crate) fn vendor_call(vendor: Vendor, operation: Call, outcome: &'static str, took: Duration) {
    let labels = [
        ("vendor", vendor.as_str()),
        ("operation", operation.as_str()),
        ("outcome", outcome),
    ];
    metrics::counter!(VENDOR_CALLS, &labels).increment(1);
    metrics::histogram!(VENDOR_CALL_SECONDS, &labels).record(took.as_secs_f64());
}

pub(crate) fn renewal(vendor: Vendor, outcome: &'static str) {
    metrics::counter!(RENEWALS, "vendor" => vendor.as_str(), "outcome" => outcome).increment(1);
}

/// An answer whose tokens were kept although it did not match the vendor's documentation.
pub(crate) fn answer_anomaly(vendor: Vendor, anomaly: &refresh_facade::Anomaly) {
    metrics::counter!(ANOMALIES, "vendor" => vendor.as_str(), "anomaly" => anomaly.kind())
        .increment(1);
}

pub(crate) fn anomaly(vendor: Vendor, anomaly: Anomaly) {
    metrics::counter!(ANOMALIES, "vendor" => vendor.as_str(), "anomaly" => anomaly.as_str())
        .increment(1);
}

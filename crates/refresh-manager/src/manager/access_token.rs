//! The token the manager hands out, and how a stored record becomes one: its deadlines on the clock that never
//! jumps and on the wall clock.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use refresh_facade::Secret;

use super::Manager;
use super::credential::Credential;
use crate::clock::{ManagerClock, Moment};
use crate::observe::{self, Anomaly};
use crate::store::{TokenStore, Versioned};

/// A valid access token, as the cache holds it: cloning the `Arc` the manager hands out allocates nothing.
#[derive(Debug)]
#[non_exhaustive]
pub struct AccessToken {
    pub secret: Secret,
    pub expires_at: DateTime<Utc>,
    /// When its background refresh is due (the policy's margin and jitter before expiry), on the wall clock.
    pub refresh_at: DateTime<Utc>,
    /// The store record's version these tokens are.
    pub version: u64,
    /// The same two deadlines on the clock that never jumps, and on the wall clock in milliseconds: the read path
    /// compares both, and a token is fresh (or valid) only while both say so.
    pub(super) valid_until: Moment,
    pub(super) refresh_due: Moment,
    pub(super) expires_ms: i64,
    pub(super) refresh_ms: i64,
    /// No renewal starts before this (the policy's minimum interval after the renewal that issued it).
    pub(super) renew_not_before: Moment,
}

impl AccessToken {
    /// Whether it is still valid now on `clock`: its deadline has not passed, and the wall clock does not say it
    /// expired.
    pub fn is_valid(&self, clock: &ManagerClock) -> bool {
        self.valid_at(clock.now(), clock.wall_millis())
    }

    /// Whether it is not yet due for renewal now on `clock` (on both its deadlines), and valid.
    pub fn is_fresh(&self, clock: &ManagerClock) -> bool {
        self.fresh_at(clock.now(), clock.wall_millis())
    }

    #[inline]
    pub(super) fn valid_at(&self, now: Moment, wall_ms: i64) -> bool {
        now < self.valid_until && wall_ms < self.expires_ms
    }

    #[inline]
    pub(super) fn fresh_at(&self, now: Moment, wall_ms: i64) -> bool {
        now < self.refresh_due && wall_ms < self.refresh_ms && self.valid_at(now, wall_ms)
    }

    /// Whether a renewal may start at `now`: the policy's minimum interval after the renewal that issued it is over.
    pub(super) fn may_renew_at(&self, now: Moment) -> bool {
        now >= self.renew_not_before
    }

    /// A copy of its own (a thread's, see [`super::thread_copies`]).
    pub(crate) fn duplicate(&self) -> AccessToken {
        AccessToken {
            secret: self.secret.clone(),
            ..*self
        }
    }
}

impl<S: TokenStore + 'static> Manager<S> {
    /// The cached form of `record`. Its deadline on the clock that never jumps counts from `sent` for tokens just
    /// issued; for tokens read from the store, from what the wall clock says is left of them, never more than
    /// their whole lifetime and less the clock skew allowed between writers. Its refresh is due the policy's
    /// margin and jitter before that deadline, however old the token already is. Tokens just issued are not
    /// renewed again before the policy's minimum interval.
    pub(super) fn token_of(
        &self,
        credential: &Credential,
        record: &Versioned,
        sent: Option<Moment>,
    ) -> Arc<AccessToken> {
        let tokens = &record.tokens;
        let policy = &credential.options.policy;
        let lifetime = (tokens.expires_at - tokens.obtained_at)
            .to_std()
            .unwrap_or_default();
        let clock = &self.shared.clock;
        let now = clock.now();
        let (valid_until, expires_at) = match sent {
            Some(sent) => {
                // Fresh: the deadline counts from the send. The wall clock checks this process makes are on its own
                // clock, and the tokens may be stored on the vendor's (`Manager::stored`): by how much, is how far
                // the stored `obtained_at` is from our wall clock at the send.
                let sent_wall =
                    clock.wall() - TimeDelta::from_std(now.since(sent)).unwrap_or_default();
                let moved = tokens.obtained_at - sent_wall;
                let expires_at = if moved.abs() < TimeDelta::seconds(1) {
                    tokens.expires_at
                } else {
                    tokens.expires_at - moved
                };
                (sent.after(lifetime), expires_at)
            }
            None => {
                let trusted = TimeDelta::from_std(lifetime.saturating_sub(self.shared.clock_skew))
                    .unwrap_or(TimeDelta::MAX);
                let skew = TimeDelta::from_std(self.shared.clock_skew).unwrap_or(TimeDelta::MAX);
                let wall = clock.wall();
                let left = if tokens.obtained_at > wall + skew {
                    // Obtained "later" than now: the writer's clock ran ahead, or ours went back since. Either way
                    // the wall clock cannot tell this token's age: it is due at once.
                    observe::anomaly(credential.vendor(), Anomaly::ObtainedInTheFuture);
                    tracing::warn!(credential = %credential.id, ahead_s = (tokens.obtained_at - wall).num_seconds(),
                        "the stored tokens were obtained later than this clock says it is now: renewing them");
                    TimeDelta::zero()
                } else {
                    (tokens.expires_at - wall - skew).min(trusted)
                };
                (now.offset(left), tokens.expires_at - skew)
            }
        };
        let ahead = policy.ahead_of_expiry(lifetime, self.draw());
        let refresh_due = valid_until.before(ahead);
        let refresh_at = expires_at - TimeDelta::from_std(ahead).unwrap_or(TimeDelta::MAX);
        // Only tokens that are due again by their own lifetime before the interval is over wait for it: a wall
        // clock that jumped makes a long-lived token due early, and that renewal must not wait.
        let renew_not_before = sent
            .map(|sent| sent.after(policy.minimum_interval))
            .filter(|&floor| refresh_due < floor)
            .unwrap_or_default();
        Arc::new(AccessToken {
            secret: tokens.access_token.clone(),
            expires_at: match sent {
                Some(_) => expires_at,
                None => tokens.expires_at,
            },
            refresh_at,
            version: record.version,
            valid_until,
            refresh_due,
            expires_ms: expires_at.timestamp_millis(),
            refresh_ms: refresh_at.timestamp_millis(),
            renew_not_before,
        })
    }
}

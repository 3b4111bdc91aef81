//! How a renewal ended, and what follows: backoff for what may pass, and for a refusal for good only a look in the
//! store now and then.

use std::sync::Arc;

use super::Manager;
use super::access_token::AccessToken;
use super::credential::Credential;
use crate::clock::Moment;
use crate::error::ManagerError;
use crate::observe::{self, Anomaly, Renewed};
use crate::store::TokenStore;

/// What went wrong lately, and until when callers without a valid token get that instead of a new attempt.
#[derive(Default)]
pub(super) struct Health {
    pub(super) failures: u32,
    pub(super) quiet_until: Option<Moment>,
    pub(super) last_error: Option<ManagerError>,
    /// The store version the vendor refused for good: it is not presented again until the store moves past it.
    pub(super) dead_at: Option<u64>,
    /// The store version after whose refusal the credential's own login was tried: tried once per version.
    pub(super) logged_in_after_refusal_of: Option<u64>,
    /// The store version whose refresh token the vendor refused for good, while a login mends it: it is not
    /// presented again.
    pub(super) refused_version: Option<u64>,
}

impl Health {
    /// The error callers without a valid token get while the manager waits before trying again.
    pub(super) fn waiting_error(&self, now: Moment) -> Option<ManagerError> {
        match self.quiet_until {
            Some(until) if now < until => self.last_error.clone(),
            _ => None,
        }
    }

    /// The vendor's last refusal, if it refused this store version for good.
    pub(super) fn refused_for_good(&self, version: u64) -> Option<ManagerError> {
        match self.dead_at {
            Some(dead) if version <= dead => self.last_error.clone(),
            _ => None,
        }
    }
}

impl<S: TokenStore + 'static> Manager<S> {
    /// Records how a renewal ended: counts it, and after a failure decides when to try again (backoff for what may
    /// pass; for a refusal for good, only a look in the store now and then, with one clear log line).
    pub(super) fn settle(
        &self,
        credential: &Credential,
        result: &Result<(Arc<AccessToken>, Renewed), ManagerError>,
    ) {
        let now = self.shared.clock.now();
        let vendor = credential.vendor();
        let mut state = credential.state();
        let seen_version = state.seen_version;
        let health = &mut state.health;
        let error = match result {
            Ok((token, renewed)) => {
                observe::renewal(vendor, renewed.as_str());
                *health = Health::default();
                if token.renew_not_before > token.refresh_due {
                    observe::anomaly(vendor, Anomaly::ShortLifetime);
                    tracing::warn!(credential = %credential.id, %vendor, valid_for_ms = token.valid_until.since(now).as_millis() as u64,
                        "the vendor's tokens are due again at once; the next renewal waits for the policy's minimum interval");
                }
                return;
            }
            Err(error) => error,
        };
        observe::renewal(vendor, error.outcome());
        health.last_error = Some(error.clone());
        if !error.is_retryable() {
            let version = seen_version;
            if health.dead_at != Some(version) {
                tracing::error!(credential = %credential.id, %vendor, %error, "the credential needs attention; \
                    the vendor is not asked again until the store or its login changes");
            }
            health.dead_at = Some(version);
            health.quiet_until = Some(now.after(self.shared.dead_recheck));
            return;
        }
        health.failures = health.failures.saturating_add(1);
        let valid_for = credential
            .current
            .load()
            .as_ref()
            .filter(|token| token.is_valid(&self.shared.clock))
            .map(|token| token.valid_until.since(now));
        let draw = self.draw();
        let backoff = &credential.options.policy.backoff;
        if error
            .retry_after()
            .is_some_and(|asked| asked > backoff.maximum)
        {
            observe::anomaly(vendor, Anomaly::RetryAfterCapped);
        }
        let wait = backoff.wait(health.failures, error.retry_after(), valid_for, draw);
        let at = now.after(wait);
        health.quiet_until = Some(at);
        tracing::warn!(credential = %credential.id, %vendor, %error, failures = health.failures,
            retry_in_ms = wait.as_millis() as u64, "renewal failed; trying again later");
        drop(state);
        self.schedule(credential, at);
    }

    /// Whether the vendor's `error` on the refresh of `version` is one a login of the credential's own may mend:
    /// a refusal of the refresh token, always; any other refusal for good (Sugon AC's 10004 "invalid parameter"
    /// for a spent token), once for that version before the credential is reported dead.
    pub(super) fn log_in_after(
        &self,
        credential: &Credential,
        error: &ManagerError,
        version: u64,
    ) -> bool {
        if error.is_reauthorization_required() {
            return true;
        }
        let Some(refusal) = error.refresh_error() else {
            return false;
        };
        if refusal.is_retryable()
            || refusal.is_unsupported()
            || refusal.is_component_token_expired()
        {
            return false;
        }
        let mut state = credential.state();
        let health = &mut state.health;
        let first = health.logged_in_after_refusal_of != Some(version);
        health.logged_in_after_refusal_of = Some(version);
        first
    }
}

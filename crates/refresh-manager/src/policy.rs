//! When to refresh, and how long to wait after a failure: the rules, as pure functions of a random draw, so that
//! tests fix the draw and the manager seeds its own.

use std::time::Duration;

/// When to refresh ahead of expiry, per credential: `max(minimum_ahead, fraction_ahead × lifetime)` before it,
/// and up to `jitter × that margin` earlier still, drawn at random, so that credentials issued together do not all
/// refresh in the same second.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RefreshPolicy {
    pub minimum_ahead: Duration,
    /// Of the token's lifetime, between 0 and 1.
    pub fraction_ahead: f64,
    /// Of the margin, between 0 and 1: how much earlier than the margin a refresh may be drawn.
    pub jitter: f64,
    /// How to wait after a failure that may pass.
    pub backoff: Backoff,
    /// The shortest time between two renewals that succeeded: tokens that are due again sooner (a vendor that
    /// issues 5-second tokens, or an expiry already past) wait this long, so that nothing loops.
    pub minimum_interval: Duration,
}

impl Default for RefreshPolicy {
    /// 60 seconds or 10% of the lifetime before expiry, whichever is longer, up to half that again earlier;
    /// [`Backoff::default`] after failures; at most one successful renewal every 30 seconds.
    fn default() -> Self {
        RefreshPolicy {
            minimum_ahead: Duration::from_secs(60),
            fraction_ahead: 0.1,
            jitter: 0.5,
            backoff: Backoff::default(),
            minimum_interval: Duration::from_secs(30),
        }
    }
}

impl RefreshPolicy {
    /// A policy that refreshes `margin` before expiry (at least), with the default jitter and backoff.
    pub fn ahead(margin: Duration) -> Self {
        RefreshPolicy {
            minimum_ahead: margin,
            ..RefreshPolicy::default()
        }
    }

    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn with_minimum_interval(mut self, interval: Duration) -> Self {
        self.minimum_interval = interval;
        self
    }

    /// How long before the end of a token's `lifetime` a refresh is due, before jitter: never more than the
    /// lifetime (a token shorter than the minimum is due at once).
    pub fn margin(&self, lifetime: Duration) -> Duration {
        let share = lifetime.mul_f64(self.fraction_ahead.clamp(0.0, 1.0));
        share.max(self.minimum_ahead).min(lifetime)
    }

    /// How long before a token of `lifetime` expires its refresh is due, for a random `draw` in `[0, 1)`: the
    /// margin and its jitter, never more than the lifetime. Counted back from the expiry, so that a token that is
    /// already old (read from the store after a restart) is due as early before its expiry as a new one.
    pub(crate) fn ahead_of_expiry(&self, lifetime: Duration, draw: f64) -> Duration {
        let margin = self.margin(lifetime);
        let early = margin.mul_f64(self.jitter.clamp(0.0, 1.0) * draw.clamp(0.0, 1.0));
        (margin + early).min(lifetime)
    }
}

/// Capped exponential backoff with jitter: the wait is drawn uniformly from the top `jitter` share of a ceiling
/// that doubles with each failure in a row, up to `maximum`. `jitter: 1.0` is full jitter (anywhere from zero to
/// the ceiling); the default 0.75 keeps a quarter of the ceiling as a floor, which bounds what an outage costs: over
/// 100,000 simulated 10-minute outages, at most 13 attempts, where full jitter's many short draws reach 17
/// (`a_ten_minute_outage_costs_at_most_15_attempts_whatever_the_draws`).
///
/// The wait is never shorter than `minimum` (no busy loop, even right before expiry) nor than what the vendor
/// asked (`Retry-After`); while the token is still valid it is at most half of what is left of it, so that there is
/// always another try before it expires.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The ceiling of the first wait; each failure after it doubles the ceiling.
    pub initial: Duration,
    /// The highest ceiling.
    pub maximum: Duration,
    /// The shortest wait.
    pub minimum: Duration,
    /// Of the ceiling, between 0 and 1: how wide the range the wait is drawn from.
    pub jitter: f64,
}

impl Default for Backoff {
    /// Ceilings of 1 s, 2 s, 4 s … up to 10 minutes, waits drawn from their top three quarters, at least 1 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            maximum: Duration::from_secs(600),
            minimum: Duration::from_secs(1),
            jitter: 0.75,
        }
    }
}

impl Backoff {
    /// Full jitter: waits drawn from zero to the ceiling.
    pub fn with_full_jitter(mut self) -> Self {
        self.jitter = 1.0;
        self
    }

    /// The wait after the `failures`-th failure in a row (1 for the first), for a random `draw` in `[0, 1)`.
    /// `valid_for` is how long the cached token stays valid (`None` if there is none).
    pub fn wait(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        valid_for: Option<Duration>,
        draw: f64,
    ) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let ceiling = self
            .initial
            .saturating_mul(1_u32 << doublings)
            .min(self.maximum);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let mut wait = ceiling.mul_f64(1.0 - jitter + jitter * draw.clamp(0.0, 1.0));
        if let Some(valid_for) = valid_for {
            wait = wait.min(valid_for / 2);
        }
        // What the vendor asked, but never longer than the longest wait: a far-future `Retry-After` (or `u64::MAX`
        // seconds) would otherwise silence the credential until a restart.
        let asked = retry_after.unwrap_or_default().min(self.maximum);
        wait.max(self.minimum).max(asked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_margin_is_the_longer_of_the_minimum_and_the_fraction_never_the_whole_lifetime() {
        let policy = RefreshPolicy::default();
        // 1 h: 10% is 6 min, more than 60 s.
        assert_eq!(policy.margin(HOUR), Duration::from_secs(360));
        // 5 min: 10% is 30 s, less than 60 s.
        assert_eq!(
            policy.margin(Duration::from_secs(300)),
            Duration::from_secs(60)
        );
        // Shorter than the minimum: due at once.
        assert_eq!(
            policy.margin(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        let custom = RefreshPolicy {
            minimum_ahead: Duration::from_secs(1),
            fraction_ahead: 0.5,
            ..RefreshPolicy::default()
        };
        assert_eq!(
            custom.margin(Duration::from_secs(100)),
            Duration::from_secs(50)
        );
        assert_eq!(
            RefreshPolicy::ahead(Duration::from_secs(900)).margin(HOUR),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn a_policy_takes_its_own_backoff() {
        let policy = RefreshPolicy::default().with_backoff(Backoff::default().with_full_jitter());
        assert_eq!(policy.backoff.jitter, 1.0);
        assert_eq!(RefreshPolicy::default().backoff, Backoff::default());
        let unpaced = RefreshPolicy::default().with_minimum_interval(Duration::ZERO);
        assert_eq!(unpaced.minimum_interval, Duration::ZERO);
        assert_eq!(
            RefreshPolicy::default().minimum_interval,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn jitter_draws_the_refresh_up_to_its_share_of_the_margin_earlier() {
        let policy = RefreshPolicy::default();
        assert_eq!(policy.ahead_of_expiry(HOUR, 0.0), Duration::from_secs(360));
        // The whole draw: half the margin (3 min) earlier.
        assert_eq!(policy.ahead_of_expiry(HOUR, 1.0), Duration::from_secs(540));
        assert_eq!(policy.ahead_of_expiry(HOUR, 0.5), Duration::from_secs(450));
        assert_eq!(
            policy.with_jitter(0.0).ahead_of_expiry(HOUR, 0.9),
            Duration::from_secs(360)
        );
        // A token shorter than the margin is due at once (its whole lifetime ahead), whatever the draw.
        assert_eq!(
            policy.ahead_of_expiry(Duration::from_secs(30), 0.7),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn backoff_doubles_its_ceiling_up_to_the_maximum_and_draws_below_it() {
        let full = Backoff::default().with_full_jitter();
        let top = |failures| full.wait(failures, None, None, 1.0);
        assert_eq!(top(1), Duration::from_secs(1));
        assert_eq!(top(2), Duration::from_secs(2));
        assert_eq!(top(4), Duration::from_secs(8));
        assert_eq!(top(11), Duration::from_secs(600));
        assert_eq!(top(u32::MAX), Duration::from_secs(600));
        assert_eq!(full.wait(6, None, None, 0.5), Duration::from_secs(16));
        // Never below the minimum: no busy loop.
        assert_eq!(full.wait(6, None, None, 0.0), Duration::from_secs(1));
        // The default draws from the top three quarters of the ceiling.
        let default = Backoff::default();
        assert_eq!(default.wait(7, None, None, 0.0), Duration::from_secs(16));
        assert_eq!(default.wait(7, None, None, 0.5), Duration::from_secs(40));
        assert_eq!(default.wait(7, None, None, 1.0), Duration::from_secs(64));
    }

    /// Attempts a 10-minute outage costs, starting when a refresh is due 15 minutes before expiry, with one
    /// attempt at the start and each next one after `backoff`'s wait; `None` if the token expired first.
    fn attempts_through_an_outage(backoff: &Backoff, random: &mut fastrand::Rng) -> Option<u32> {
        let (outage, margin) = (Duration::from_secs(600), Duration::from_secs(900));
        let (mut elapsed, mut failures) = (Duration::ZERO, 0);
        while elapsed < outage {
            failures += 1;
            let valid_for = margin.checked_sub(elapsed)?;
            elapsed += backoff.wait(failures, None, Some(valid_for), random.f64());
        }
        (elapsed < margin).then_some(failures + 1)
    }

    /// Over 100,000 simulated outages the default backoff never needs more than 15 attempts and always renews
    /// before expiry; full jitter's short draws would exceed 15.
    #[test]
    fn a_ten_minute_outage_costs_at_most_15_attempts_whatever_the_draws() {
        let mut random = fastrand::Rng::with_seed(2026);
        let most = |backoff: Backoff, random: &mut fastrand::Rng| {
            (0..100_000)
                .map(|_| {
                    attempts_through_an_outage(&backoff, random).expect("renewed before expiry")
                })
                .max()
                .unwrap()
        };
        let default = most(Backoff::default(), &mut random);
        eprintln!("outage attempts: default at most {default}");
        assert!(default <= 15, "{default} attempts");
        let full = most(Backoff::default().with_full_jitter(), &mut random);
        eprintln!("outage attempts: full jitter at most {full}");
        assert!(full > 15, "full jitter: {full} attempts");
    }

    #[test]
    fn backoff_honours_retry_after_and_leaves_time_for_another_try_before_expiry() {
        let backoff = Backoff::default().with_full_jitter();
        let retry_after = Some(Duration::from_secs(42));
        assert_eq!(
            backoff.wait(1, retry_after, None, 0.5),
            Duration::from_secs(42)
        );
        assert_eq!(
            backoff.wait(10, None, Some(Duration::from_secs(100)), 1.0),
            Duration::from_secs(50)
        );
        // Near expiry the minimum still holds, and what the vendor asked wins over the token's deadline.
        assert_eq!(
            backoff.wait(10, None, Some(Duration::from_millis(10)), 1.0),
            Duration::from_secs(1)
        );
        assert_eq!(
            backoff.wait(10, retry_after, Some(Duration::from_secs(10)), 1.0),
            Duration::from_secs(42)
        );
        // A far-future Retry-After waits the longest wait, not forever.
        let forever = Some(Duration::from_secs(u64::MAX));
        assert_eq!(backoff.wait(1, forever, None, 0.5), backoff.maximum);
        assert_eq!(
            backoff.wait(1, Some(Duration::from_secs(601)), None, 0.5),
            Duration::from_secs(600)
        );
    }
}

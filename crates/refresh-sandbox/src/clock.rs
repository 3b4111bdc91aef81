//! The emulators' clock: the real time plus an offset that tests advance instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Shared by every emulator of a sandbox; cloning shares the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The emulators' "now".
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the emulators' time forward (tokens expire, windows close) without waiting.
    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(millis, Ordering::SeqCst);
    }

    /// Moves the emulators' time back: what they issue now looks issued that long ago to a client that reads the
    /// system clock (a separate process, such as the command line).
    pub fn rewind(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_sub(millis, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_and_is_shared_by_clones() {
        let clock = Clock::default();
        let shared = clock.clone();
        let before = clock.now();
        shared.advance(Duration::from_secs(25 * 3600));
        let moved = clock.now() - before;
        assert!(
            moved >= TimeDelta::hours(25) && moved < TimeDelta::hours(25) + TimeDelta::seconds(5)
        );
        shared.rewind(Duration::from_secs(26 * 3600));
        let back = clock.now() - before;
        assert!(
            back >= TimeDelta::hours(-1) && back < TimeDelta::hours(-1) + TimeDelta::seconds(5),
            "{back}"
        );
    }
}

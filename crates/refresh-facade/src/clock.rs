//! Where the facade reads "now": when a request is sent (relative lifetimes count from it), and how old a
//! presented token is (Sugon AC).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The facade's clock: the system's, or one the caller provides (a service's own, a test's fake clock).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(Utc::now))
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Clock").field(&self.now()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_reads_its_source() {
        let fixed = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(Clock::from_fn(move || fixed).now(), fixed);
        let system = Clock::default().now();
        assert!((Utc::now() - system).num_seconds().abs() < 5);
        assert_eq!(
            format!("{:?}", Clock::from_fn(move || fixed)),
            "Clock(2023-11-14T22:13:20Z)"
        );
    }
}

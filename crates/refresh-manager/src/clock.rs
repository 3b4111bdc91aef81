//! The manager's two clocks. Instants that are stored (a token's expiry, which must survive a restart) are wall
//! time; deadlines the running process keeps (when to refresh, until when a cached token is valid, when to try
//! again) are [`Moment`]s on a clock that never jumps and counts time spent suspended (Linux `CLOCK_BOOTTIME`),
//! counted from when the request was sent. A token is handed out only while both clocks say it is valid: a wall
//! clock set back keeps no token alive past its deadline, and one that moved ahead (an operator, NTP, or a laptop
//! resumed after days) hands out no token the wall says expired.
//!
//! [`ManualClock`] lets tests move time forward without sleeping: a manager sleeping on it wakes when it is
//! advanced.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

/// A point on the manager's monotonic clock: the time since the clock's origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(Duration);

impl Moment {
    /// `by` after this moment (saturating).
    pub fn after(self, by: Duration) -> Moment {
        Moment(self.0.saturating_add(by))
    }

    /// `by` before this moment, never before the origin.
    pub fn before(self, by: Duration) -> Moment {
        Moment(self.0.saturating_sub(by))
    }

    /// How long from `earlier` to this moment; zero if `earlier` is later.
    pub fn since(self, earlier: Moment) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// This moment moved by a signed wall-clock span (an expiry read from the store, relative to "now").
    pub(crate) fn offset(self, by: TimeDelta) -> Moment {
        match by.to_std() {
            Ok(later) => self.after(later),
            Err(_) => self.before((-by).to_std().unwrap_or(Duration::MAX)),
        }
    }
}

/// Where the manager reads the time: the system's clocks, or a [`ManualClock`].
#[derive(Clone)]
pub struct ManagerClock {
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// `CLOCK_BOOTTIME` for "now" (it counts suspend, where `Instant` does not), and the coarse wall clock
    /// (`CLOCK_REALTIME_COARSE`, millisecond resolution, read in a few nanoseconds) for the read path's wall check.
    System,
    Manual(ManualClock),
}

/// The longest one sleep of the system clock lasts before it looks at the time again: tokio's timers stop while
/// the machine is suspended, so a deadline that passed during a suspend is noticed at most this long after resume.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

/// A reading of a Linux clock, as the time since its origin.
fn read_clock(id: libc::clockid_t) -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec, and both clocks read here exist on every Linux since 2.6.39.
    let failed = unsafe { libc::clock_gettime(id, &mut now) } != 0;
    if failed {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

impl ManagerClock {
    /// The system's wall clock and `std::time::Instant`.
    pub fn system() -> Self {
        ManagerClock {
            source: Source::System,
        }
    }

    /// Wall-clock "now": what stored instants are compared with.
    pub fn wall(&self) -> DateTime<Utc> {
        match &self.source {
            Source::System => Utc::now(),
            Source::Manual(manual) => manual.wall(),
        }
    }

    /// Wall-clock "now" in milliseconds since the Unix epoch, at millisecond resolution: what the read path compares
    /// a token's wall-clock deadlines with.
    pub(crate) fn wall_millis(&self) -> i64 {
        match &self.source {
            Source::System => i64::try_from(read_clock(libc::CLOCK_REALTIME_COARSE).as_millis())
                .unwrap_or(i64::MAX),
            Source::Manual(manual) => manual.wall().timestamp_millis(),
        }
    }

    /// "Now" on the clock that never jumps and counts suspend: what the process's deadlines are compared with.
    pub fn now(&self) -> Moment {
        match &self.source {
            Source::System => Moment(read_clock(libc::CLOCK_BOOTTIME)),
            Source::Manual(manual) => manual.now(),
        }
    }

    /// Returns at `deadline` (at once if it has passed), however far it is: a deadline past any `Instant` only
    /// sleeps long.
    pub async fn sleep_until(&self, deadline: Moment) {
        match &self.source {
            Source::System => loop {
                let left = deadline.since(self.now());
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(LONGEST_SLEEP)).await;
            },
            Source::Manual(manual) => manual.sleep_until(deadline).await,
        }
    }

    /// The facade's clock reading this one's wall time, so that a refresher's `sent_at` and this manager agree.
    pub fn facade_clock(&self) -> refresh_facade::Clock {
        let clock = self.clone();
        refresh_facade::Clock::from_fn(move || clock.wall())
    }
}

impl Default for ManagerClock {
    fn default() -> Self {
        ManagerClock::system()
    }
}

impl From<ManualClock> for ManagerClock {
    fn from(manual: ManualClock) -> Self {
        ManagerClock {
            source: Source::Manual(manual),
        }
    }
}

impl fmt::Debug for ManagerClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            Source::System => "system",
            Source::Manual(_) => "manual",
        };
        f.debug_struct("ManagerClock")
            .field("source", &kind)
            .field("wall", &self.wall())
            .finish()
    }
}

/// A clock for tests: real time plus offsets that [`ManualClock::advance`] moves forward (both clocks) and
/// [`ManualClock::jump_wall`] moves on the wall clock alone, as an operator or NTP would. Cloning shares it.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    origin: Instant,
    wall_origin: DateTime<Utc>,
    advanced_ms: AtomicI64,
    wall_jump_ms: AtomicI64,
    advanced: Notify,
}

impl ManualClock {
    pub fn new() -> Self {
        ManualClock::starting_at(Utc::now())
    }

    /// A clock whose wall time is `wall` now: a process started later than another, or one whose wall clock is
    /// skewed against the others'.
    pub fn starting_at(wall: DateTime<Utc>) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                origin: Instant::now(),
                wall_origin: wall,
                advanced_ms: AtomicI64::new(0),
                wall_jump_ms: AtomicI64::new(0),
                advanced: Notify::new(),
            }),
        }
    }

    /// Moves both clocks forward by `by`, waking what sleeps on them.
    pub fn advance(&self, by: Duration) {
        self.inner
            .advanced_ms
            .fetch_add(millis(by), Ordering::SeqCst);
        self.inner.advanced.notify_waiters();
    }

    /// Moves both clocks forward by `by` without waking what sleeps on them, as a suspended machine does: its
    /// timers fire late, and only a look at the clock tells that time passed.
    pub fn suspend(&self, by: Duration) {
        self.inner
            .advanced_ms
            .fetch_add(millis(by), Ordering::SeqCst);
    }

    /// Moves the wall clock alone, forward or back: the monotonic clock does not notice.
    pub fn jump_wall(&self, by: TimeDelta) {
        self.inner
            .wall_jump_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }

    fn now(&self) -> Moment {
        let advanced = self.inner.advanced_ms.load(Ordering::SeqCst);
        Moment(self.inner.origin.elapsed() + Duration::from_millis(advanced.max(0) as u64))
    }

    fn wall(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.inner.origin.elapsed()).unwrap_or(TimeDelta::MAX);
        let offset = self.inner.advanced_ms.load(Ordering::SeqCst)
            + self.inner.wall_jump_ms.load(Ordering::SeqCst);
        self.inner.wall_origin + elapsed + TimeDelta::milliseconds(offset)
    }

    async fn sleep_until(&self, deadline: Moment) {
        loop {
            // Registered before the time is read, so an advance in between is not missed.
            let advanced = self.inner.advanced.notified();
            tokio::pin!(advanced);
            advanced.as_mut().enable();
            let now = self.now();
            if now >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(deadline.since(now)) => {}
                () = advanced => {}
            }
        }
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_add_subtract_and_never_go_before_the_origin() {
        let m = Moment(Duration::from_secs(10));
        assert_eq!(
            m.after(Duration::from_secs(5)),
            Moment(Duration::from_secs(15))
        );
        assert_eq!(m.before(Duration::from_secs(15)), Moment::default());
        assert_eq!(
            m.since(Moment(Duration::from_secs(4))),
            Duration::from_secs(6)
        );
        assert_eq!(Moment::default().since(m), Duration::ZERO);
        assert_eq!(
            m.offset(TimeDelta::seconds(-3)),
            Moment(Duration::from_secs(7))
        );
        assert_eq!(
            m.offset(TimeDelta::seconds(3)),
            Moment(Duration::from_secs(13))
        );
    }

    #[test]
    fn advancing_moves_both_clocks_and_a_wall_jump_only_the_wall() {
        let manual = ManualClock::new();
        let clock = ManagerClock::from(manual.clone());
        let (wall, now) = (clock.wall(), clock.now());
        manual.advance(Duration::from_secs(3600));
        assert!(clock.now().since(now) >= Duration::from_secs(3600));
        assert!(clock.wall() - wall >= TimeDelta::hours(1));
        let (wall, now) = (clock.wall(), clock.now());
        manual.jump_wall(TimeDelta::hours(-5));
        assert!(clock.wall() < wall - TimeDelta::hours(4));
        assert!(clock.now() >= now && clock.now().since(now) < Duration::from_secs(5));
        assert!(format!("{clock:?}").contains("manual"));
    }

    #[tokio::test]
    async fn a_sleeper_on_a_manual_clock_wakes_when_it_is_advanced() {
        let manual = ManualClock::new();
        let clock = ManagerClock::from(manual.clone());
        let deadline = clock.now().after(Duration::from_secs(24 * 3600));
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished());
        manual.advance(Duration::from_secs(24 * 3600));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken by the advance")
            .unwrap();
    }

    #[tokio::test]
    async fn a_system_sleep_lasts_until_its_moment() {
        let clock = ManagerClock::system();
        let started = Instant::now();
        clock
            .sleep_until(clock.now().after(Duration::from_millis(60)))
            .await;
        // The coarse clock may lag a few milliseconds behind `Instant`.
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_system_sleep_until_a_past_moment_returns_at_once() {
        let clock = ManagerClock::system();
        tokio::time::timeout(Duration::from_secs(1), clock.sleep_until(Moment::default()))
            .await
            .unwrap();
        assert!(format!("{clock:?}").contains("system"));
    }
}

//! The manager's two clocks. Instants that are stored (a token's expiry, which must survive a restart) are wall
//! time; deadlines the running process keeps (when to refresh, until when a cached token is valid, when to try
//! again) are [`Moment`]s on a clock that never jumps and counts time spent suspended (Linux `CLOCK_BOOTTIME`),
//! counted from when the request was sent. A token is handed out only while both clocks say it is valid: a wall
//! clock set back keeps no token alive past its deadline, and one that moved ahead (an operator, NTP, or a laptop
//! resumed after days) hands out no token the wall says expired. The read path's first question, "certainly still
//! fresh?", is asked of upper bounds of both, made from two coarse clocks ([`ClockBasis`]).
//!
//! [`ManualClock`] lets tests move time forward without sleeping: a manager sleeping on it wakes when it is
//! advanced.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

/// A point on the manager's monotonic clock: the time since the clock's origin, in nanoseconds (one integer, so
/// that the read path compares two with one instruction; it lasts 584 years).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(u64);

impl Moment {
    fn of(since_origin: Duration) -> Moment {
        Moment(nanos(since_origin))
    }

    /// `by` after this moment (saturating).
    pub fn after(self, by: Duration) -> Moment {
        Moment(self.0.saturating_add(nanos(by)))
    }

    /// `by` before this moment, never before the origin.
    pub fn before(self, by: Duration) -> Moment {
        Moment(self.0.saturating_sub(nanos(by)))
    }

    /// How long from `earlier` to this moment; zero if `earlier` is later.
    pub fn since(self, earlier: Moment) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// This moment moved by a signed wall-clock span (an expiry read from the store, relative to "now").
    pub(crate) fn offset(self, by: TimeDelta) -> Moment {
        match by.to_std() {
            Ok(later) => self.after(later),
            Err(_) => self.before((-by).to_std().unwrap_or(Duration::MAX)),
        }
    }
}

impl fmt::Debug for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Moment")
            .field(&Duration::from_nanos(self.0))
            .finish()
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
    /// (`CLOCK_REALTIME_COARSE`, a tick's resolution, read in a few nanoseconds) for the read path's wall check.
    System,
    Manual(ManualClock),
}

/// The longest one sleep of the system clock lasts before it looks at the time again: tokio's timers stop while
/// the machine is suspended, so a deadline that passed during a suspend is noticed at most this long after resume.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

/// A reading of a Linux clock, as the time since its origin.
#[inline]
fn read_clock(id: libc::clockid_t) -> Duration {
    Duration::from_nanos(u64::try_from(read_nanos(id)).unwrap_or(0))
}

/// A reading of a Linux clock in nanoseconds since its origin (until the year 2262); zero if it cannot be read.
#[inline]
fn read_nanos(id: libc::clockid_t) -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec, and every clock read here exists on every Linux since 2.6.39.
    let failed = unsafe { libc::clock_gettime(id, &mut now) } != 0;
    if failed {
        return 0;
    }
    now.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec)
}

/// A span in nanoseconds, saturating (at 584 years).
fn nanos(span: Duration) -> u64 {
    u64::try_from(span.as_nanos()).unwrap_or(u64::MAX)
}

/// How far behind the time a coarse clock may be. It is moved at each tick (its resolution, 1 to 10 ms), and a
/// tick can come late: on this 2-core VM under load the coarse wall clock was up to 9.7 ms behind, with a 4 ms tick.
/// Linux hands the update to another CPU after 5 missed ticks; this allows 8, and never less than 50 ms.
fn coarse_lag_nanos() -> i64 {
    let mut resolution = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as in `read_nanos`.
    let failed = unsafe { libc::clock_getres(libc::CLOCK_REALTIME_COARSE, &mut resolution) } != 0;
    lag_of((!failed).then_some(resolution))
}

/// The lag allowed a coarse clock of this resolution (`None`: unknown).
fn lag_of(resolution: Option<libc::timespec>) -> i64 {
    const AT_LEAST: i64 = 50_000_000;
    match resolution {
        Some(tick) => (8 * (tick.tv_sec * 1_000_000_000 + tick.tv_nsec)).max(AT_LEAST),
        // Past any tick a kernel is built with.
        None => 2 * AT_LEAST,
    }
}

/// Upper bounds of both clocks now ([`ManagerClock::upper_bounds`]): never earlier than [`ManagerClock::now`] and
/// [`ManagerClock::wall_millis`] would say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) now: Moment,
    pub(crate) wall_ms: i64,
}

/// How one thread turns the two coarse clocks (a few nanoseconds each) into upper bounds of the suspend-counting
/// clock (a precise read, four times the cost) and of the wall clock.
///
/// Linux moves its clocks in three ways. Time passing moves all three alike; a suspend moves the wall clock and
/// `CLOCK_BOOTTIME` but not `CLOCK_MONOTONIC`; a step of the wall clock (an operator, NTP, a leap second) moves the
/// wall clock alone. So `boottime - wall` changes only at a step, and `wall - monotonic` changes at a step and at a
/// suspend. A basis keeps both, read precisely. While `wall - monotonic`, read coarsely, is what it was, no step
/// happened, and `wall + (boottime - wall)` is the suspend-counting clock, suspends included. A step or a suspend
/// longer than the slack changes `wall - monotonic`: then the thread reads the clocks precisely again and takes a
/// new basis. The one history these two clocks cannot tell from "nothing happened" is a suspend followed by a step
/// of the wall clock back by as long as the suspend, to within the slack (tens of milliseconds).
#[derive(Clone, Copy, Debug)]
struct ClockBasis {
    /// `wall - monotonic`, in nanoseconds.
    wall_over_monotonic: i64,
    /// `boottime - wall`, in nanoseconds: negative (boottime counts from the boot, the wall from 1970).
    boottime_over_wall: i64,
    /// How far behind the time a coarse clock may be.
    lag: i64,
    /// How far the coarse `wall - monotonic` may stray from the basis with nothing happening: a tick between the two
    /// reads, plus how inexact the basis itself is.
    slack: i64,
}

/// The precise readings a basis is taken from, in nanoseconds: monotonic, wall, boottime, monotonic again, in that
/// order, so that the two monotonic readings bound when the other two were made.
#[derive(Clone, Copy, Debug)]
struct Precise {
    monotonic_before: i64,
    wall: i64,
    boottime: i64,
    monotonic_after: i64,
}

impl Precise {
    fn read() -> Precise {
        Precise {
            monotonic_before: read_nanos(libc::CLOCK_MONOTONIC),
            wall: read_nanos(libc::CLOCK_REALTIME),
            boottime: read_nanos(libc::CLOCK_BOOTTIME),
            monotonic_after: read_nanos(libc::CLOCK_MONOTONIC),
        }
    }

    fn bounds(&self) -> Bounds {
        bounds_of(self.boottime, self.wall)
    }
}

#[inline]
fn bounds_of(boottime: i64, wall: i64) -> Bounds {
    Bounds {
        now: Moment(u64::try_from(boottime).unwrap_or(0)),
        wall_ms: wall.div_euclid(1_000_000),
    }
}

impl ClockBasis {
    fn of(precise: Precise, lag: i64) -> ClockBasis {
        let inexact = precise.monotonic_after - precise.monotonic_before;
        ClockBasis {
            wall_over_monotonic: precise.wall - precise.monotonic_before,
            // The boottime reading follows the wall reading by at most `inexact`: this errs late, the safe side.
            boottime_over_wall: precise.boottime - precise.wall,
            lag,
            slack: lag + inexact,
        }
    }

    /// Upper bounds from the coarse wall and monotonic readings, or `None` if the clocks moved apart since the
    /// basis was taken (a step or a suspend).
    #[inline]
    fn bounds(&self, coarse_wall: i64, coarse_monotonic: i64) -> Option<Bounds> {
        let strayed = (coarse_wall - coarse_monotonic - self.wall_over_monotonic).abs();
        if strayed > self.slack {
            return None;
        }
        // The coarse wall is at most `lag` behind the wall. A step back too small to notice is at most
        // `slack + lag` (the stray allowed, and a tick between the two reads), and it moved `boottime - wall` up by
        // as much. The basis's own error is on the late side.
        let wall = coarse_wall.saturating_add(self.lag);
        let boottime = coarse_wall
            .saturating_add(self.boottime_over_wall)
            .saturating_add(self.lag + self.slack + self.lag);
        Some(bounds_of(boottime, wall))
    }
}

thread_local! {
    /// This thread's basis ([`ClockBasis`]): each thread keeps its own, so that no reader writes memory another reads.
    static CLOCK_BASIS: std::cell::Cell<Option<ClockBasis>> = const { std::cell::Cell::new(None) };
}

/// Precise readings made close together: made again, up to three more times, while they were 100 µs or more apart
/// (the thread was interrupted between them, and a basis would be as inexact as the interruption was long).
fn close_together(mut read: impl FnMut() -> Precise) -> Precise {
    let mut precise = read();
    for _ in 0..3 {
        if precise.monotonic_after - precise.monotonic_before < 100_000 {
            break;
        }
        precise = read();
    }
    precise
}

/// Upper bounds of the system clocks now, from two coarse reads while this thread's basis holds.
#[inline]
fn system_upper_bounds() -> Bounds {
    let coarse_wall = read_nanos(libc::CLOCK_REALTIME_COARSE);
    let coarse_monotonic = read_nanos(libc::CLOCK_MONOTONIC_COARSE);
    let basis = CLOCK_BASIS.try_with(std::cell::Cell::get).ok().flatten();
    if let Some(bounds) = basis.and_then(|basis| basis.bounds(coarse_wall, coarse_monotonic)) {
        return bounds;
    }
    // The first read on this thread, or the clocks moved apart: read them precisely, and start from there.
    let precise = close_together(Precise::read);
    let lag = basis.map_or_else(coarse_lag_nanos, |basis| basis.lag);
    // A thread that is ending has no locals left: its reads are precise.
    let _ = CLOCK_BASIS.try_with(|cell| cell.set(Some(ClockBasis::of(precise, lag))));
    precise.bounds()
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

    /// Wall-clock "now" in milliseconds since the Unix epoch, from the coarse wall clock (a tick's resolution): what
    /// the read path compares a token's wall-clock deadlines with.
    pub(crate) fn wall_millis(&self) -> i64 {
        match &self.source {
            Source::System => i64::try_from(read_clock(libc::CLOCK_REALTIME_COARSE).as_millis())
                .unwrap_or(i64::MAX),
            Source::Manual(manual) => manual.wall().timestamp_millis(),
        }
    }

    /// Upper bounds of [`ManagerClock::now`] and [`ManagerClock::wall_millis`], read in a third of the time: for the
    /// read path's question "is this token certainly still fresh?" (a "no" is asked again of the exact clocks). On
    /// the system clocks they are ahead of the time by at most a few tens of milliseconds (see [`ClockBasis`]); on a
    /// [`ManualClock`], exact.
    #[inline]
    pub(crate) fn upper_bounds(&self) -> Bounds {
        match &self.source {
            Source::System => system_upper_bounds(),
            Source::Manual(manual) => Bounds {
                now: manual.now(),
                wall_ms: manual.wall().timestamp_millis(),
            },
        }
    }

    /// "Now" on the clock that never jumps and counts suspend: what the process's deadlines are compared with.
    pub fn now(&self) -> Moment {
        match &self.source {
            Source::System => Moment::of(read_clock(libc::CLOCK_BOOTTIME)),
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
        Moment::of(self.inner.origin.elapsed() + Duration::from_millis(advanced.max(0) as u64))
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
        let m = Moment::of(Duration::from_secs(10));
        assert_eq!(
            m.after(Duration::from_secs(5)),
            Moment::of(Duration::from_secs(15))
        );
        assert_eq!(m.before(Duration::from_secs(15)), Moment::default());
        assert_eq!(
            m.since(Moment::of(Duration::from_secs(4))),
            Duration::from_secs(6)
        );
        assert_eq!(Moment::default().since(m), Duration::ZERO);
        assert_eq!(
            m.offset(TimeDelta::seconds(-3)),
            Moment::of(Duration::from_secs(7))
        );
        assert_eq!(
            m.offset(TimeDelta::seconds(3)),
            Moment::of(Duration::from_secs(13))
        );
        // Debug shows the span since the origin, not a count of nanoseconds.
        assert_eq!(format!("{m:?}"), "Moment(10s)");
    }

    /// Linux's three clocks as the kernel keeps them (`wall = monotonic + wall_offset`, `boottime = monotonic +
    /// boot_offset`), and how this module reads them.
    struct Kernel {
        monotonic: i64,
        wall_offset: i64,
        boot_offset: i64,
        tick: i64,
    }

    impl Kernel {
        fn wall(&self) -> i64 {
            self.monotonic + self.wall_offset
        }

        fn boottime(&self) -> i64 {
            self.monotonic + self.boot_offset
        }

        /// Coarse readings: the values at the last tick the kernel has counted, `late` ticks ago for the wall and
        /// fewer for the monotonic clock, read `between` nanoseconds later (a tick may come between the two).
        fn coarse(&mut self, between: i64, late: (i64, i64)) -> (i64, i64) {
            let counted =
                |monotonic: i64, late: i64| monotonic / self.tick * self.tick - late * self.tick;
            let wall = counted(self.monotonic, late.0) + self.wall_offset;
            self.monotonic += between;
            (wall, counted(self.monotonic, late.1.min(late.0)))
        }

        /// Precise readings, each `gap` nanoseconds after the one before.
        fn precise(&mut self, gap: i64) -> Precise {
            let monotonic_before = self.monotonic;
            self.monotonic += gap;
            let wall = self.wall();
            self.monotonic += gap;
            let boottime = self.boottime();
            self.monotonic += gap;
            Precise {
                monotonic_before,
                wall,
                boottime,
                monotonic_after: self.monotonic,
            }
        }
    }

    #[test]
    fn the_cheap_bounds_are_never_behind_either_clock_and_at_most_a_few_ticks_ahead() {
        let mut random = fastrand::Rng::with_seed(20261207);
        let (mut served, mut declined) = (0, 0);
        for _ in 0..20_000 {
            let tick = [1_000_000, 4_000_000, 10_000_000][random.usize(..3)];
            let lag = 8 * tick;
            let mut kernel = Kernel {
                monotonic: random.i64(1..1_000_000_000_000_000),
                wall_offset: 1_700_000_000_000_000_000,
                boot_offset: random.i64(0..1_000_000_000_000_000),
                tick,
            };
            let basis = ClockBasis::of(kernel.precise(random.i64(0..2_000)), lag);
            // What happens before the read: time passes, the machine may suspend, the wall clock may be stepped.
            kernel.monotonic += random.i64(0..10_000_000_000);
            let suspended = match random.u8(..4) {
                0 => random.i64(1..100_000_000_000),
                1 => random.i64(1..3 * lag),
                _ => 0,
            };
            kernel.boot_offset += suspended;
            kernel.wall_offset += suspended;
            let stepped = match random.u8(..4) {
                0 => random.i64(-100_000_000_000..100_000_000_000),
                1 => random.i64(-3 * lag..3 * lag),
                _ => 0,
            };
            kernel.wall_offset += stepped;
            // Half the reads straddle a tick: the monotonic clock is read just after one.
            if random.bool() {
                kernel.monotonic += tick - kernel.monotonic % tick - random.i64(1..20);
            }
            let late = (random.i64(0..8), random.i64(0..8));
            let (coarse_wall, coarse_monotonic) = kernel.coarse(random.i64(0..40), late);
            let Some(bounds) = basis.bounds(coarse_wall, coarse_monotonic) else {
                declined += 1;
                // Declined only when the clocks moved apart: a step or a suspend.
                assert!(
                    suspended != 0 || stepped != 0,
                    "declined with nothing happening"
                );
                continue;
            };
            served += 1;
            let boottime = i64::try_from(bounds.now.0).unwrap();
            // The one history two coarse clocks cannot tell from a quiet one: a suspend, and a step back as long.
            let unseen =
                suspended != 0 && stepped < 0 && (suspended + stepped).abs() <= 3 * basis.slack;
            if !unseen {
                assert!(
                    boottime >= kernel.boottime(),
                    "{} ns behind",
                    kernel.boottime() - boottime
                );
                assert!(bounds.wall_ms >= kernel.wall().div_euclid(1_000_000));
            }
            // Tight enough to be worth reading: a quiet history is bounded within a few ticks.
            if suspended == 0 && stepped == 0 {
                assert!(
                    boottime - kernel.boottime() <= 4 * basis.slack,
                    "{} ns ahead",
                    boottime - kernel.boottime()
                );
                assert!(bounds.wall_ms * 1_000_000 - kernel.wall() <= 2 * basis.lag);
            }
        }
        // Both branches were taken often: the histories above are not all of one kind.
        assert!(
            served > 5_000 && declined > 5_000,
            "{served} served, {declined} declined"
        );
    }

    #[test]
    fn a_step_or_a_suspend_longer_than_the_slack_is_noticed() {
        let tick = 4_000_000;
        let quiet = || Kernel {
            monotonic: 5_000_000_000_000,
            wall_offset: 1_700_000_000_000_000_000,
            boot_offset: 0,
            tick,
        };
        let mut kernel = quiet();
        let lag = 8 * tick;
        let basis = ClockBasis::of(kernel.precise(100), lag);
        let (wall, monotonic) = kernel.coarse(0, (7, 0));
        assert!(basis.bounds(wall, monotonic).is_some(), "nothing happened");
        // An exact basis (no time between its reads) allows a stray of the lag, and not a nanosecond more.
        for (step, noticed) in [(lag, false), (lag + 1, true)] {
            let mut kernel = quiet();
            let basis = ClockBasis::of(kernel.precise(0), lag);
            kernel.wall_offset += step;
            let (wall, monotonic) = kernel.coarse(0, (0, 0));
            assert_eq!(
                basis.bounds(wall, monotonic).is_none(),
                noticed,
                "step {step}"
            );
        }
        for (suspend, step) in [
            (3 * lag, 0),
            (0, 3 * lag),
            (0, -3 * lag),
            (3_600_000_000_000, 0),
        ] {
            let mut kernel = quiet();
            let basis = ClockBasis::of(kernel.precise(100), lag);
            kernel.boot_offset += suspend;
            kernel.wall_offset += suspend + step;
            let (wall, monotonic) = kernel.coarse(0, (0, 0));
            assert_eq!(
                basis.bounds(wall, monotonic),
                None,
                "suspend {suspend}, step {step}"
            );
        }
    }

    #[test]
    fn a_basis_is_read_again_while_its_readings_were_interrupted_three_times_at_most() {
        let reads_until_close = |gaps: &[i64]| {
            let mut gaps = gaps.iter();
            let mut reads = 0;
            let precise = close_together(|| {
                reads += 1;
                let gap = *gaps.next().expect("read no more than the gaps given");
                Precise {
                    monotonic_before: 1_000,
                    wall: 2_000,
                    boottime: 3_000,
                    monotonic_after: 1_000 + gap,
                }
            });
            (reads, precise.monotonic_after - precise.monotonic_before)
        };
        assert_eq!(reads_until_close(&[99_999]), (1, 99_999));
        assert_eq!(reads_until_close(&[100_000, 20]), (2, 20));
        assert_eq!(
            reads_until_close(&[500_000; 4]),
            (4, 500_000),
            "then kept, inexact"
        );
    }

    #[test]
    fn a_coarse_clock_is_allowed_eight_ticks_and_at_least_fifty_milliseconds() {
        let tick = |tv_sec, tv_nsec| Some(libc::timespec { tv_sec, tv_nsec });
        assert_eq!(lag_of(tick(0, 4_000_000)), 50_000_000);
        assert_eq!(lag_of(tick(0, 10_000_000)), 80_000_000);
        assert_eq!(lag_of(tick(1, 500_000_000)), 12_000_000_000);
        assert_eq!(lag_of(None), 100_000_000);
        // Every Linux ticks at least 100 times a second, and its resolution is read.
        assert!((50_000_000..=80_000_000).contains(&coarse_lag_nanos()));
    }

    #[test]
    fn the_system_clocks_cheap_bounds_hold_between_two_exact_reads() {
        let clock = ManagerClock::system();
        let lag = coarse_lag_nanos();
        for _ in 0..1_000 {
            let (before, wall_before) = (clock.now(), Utc::now().timestamp_millis());
            let bounds = clock.upper_bounds();
            let after = clock.now();
            assert!(bounds.now >= before, "{bounds:?} {before:?}");
            assert!(bounds.wall_ms >= wall_before, "{bounds:?} {wall_before}");
            // Within a few ticks (and the basis's error) of the exact reading after it.
            let late = bounds.now.since(after).as_nanos();
            assert!(
                late <= u128::try_from(5 * lag).unwrap(),
                "{late} ns late, tick {lag} ns"
            );
        }
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

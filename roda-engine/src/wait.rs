//! Wait strategies: how a Roda worker waits when its poll finds nothing to do.
//!
//! A worker loops over "poll, then report [`Progress`]". After work it resets its
//! [`Backoff`]; after an empty poll it calls [`Backoff::idle`], which escalates through
//! three phases:
//!
//! 1. **Busy** — return at once and re-poll ([`WaitStrategy::busy_polls`] times). Lowest
//!    latency, one full core.
//! 2. **Pause** — issue [`std::hint::spin_loop`] before re-polling
//!    ([`WaitStrategy::pause_polls`] times). Still on-core, but friendlier to a sibling
//!    hyper-thread and to the memory bus.
//! 3. **Park** — [`std::thread::park_timeout`] with a timeout that starts at
//!    [`WaitStrategy::park_min`] and doubles after every park up to
//!    [`WaitStrategy::park_max`]. This is the cold path: a parked worker uses no CPU
//!    until a producer unparks it or the timeout expires.
//!
//! # Wake-up latency bound
//!
//! A worker in the park phase notices new work at the latest when its current park
//! timeout expires ([`Backoff::current_park_timeout`]), so under a strategy the bound is
//! `park_max` plus one poll. A producer that calls [`std::thread::Thread::unpark`] on the
//! worker's thread wakes it sooner. In the busy and pause phases the worker sees new work
//! on its next poll.
//!
//! # Idle cost
//!
//! Under the default [`WaitStrategy::adaptive`] preset a worker that stays idle parks for
//! 1 ms at a time, which wakes it about a thousand times per second for one empty poll
//! each: well under 2% of a core. [`WaitStrategy::busy_spin`] never parks and costs a full
//! core whether or not there is work.
//!
//! ```
//! use roda_engine::{Backoff, Progress, WaitStrategy};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! let source = AtomicU64::new(3); // stands in for a reader's `available()`
//! let mut backoff = Backoff::new(WaitStrategy::adaptive());
//! let mut done = 0;
//! while done < 3 {
//!     let progress = if source.load(Ordering::Relaxed) > 0 {
//!         source.fetch_sub(1, Ordering::Relaxed);
//!         done += 1;
//!         Progress::Busy
//!     } else {
//!         Progress::Idle
//!     };
//!     backoff.step(progress); // resets after work, waits after an empty poll
//! }
//! assert_eq!(done, 3);
//! ```

use std::time::Duration;

/// What one poll of a worker achieved; it drives the worker's [`Backoff`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Progress {
    /// The poll did work: poll again immediately.
    Busy,
    /// The poll found nothing to do: wait according to the strategy before polling again.
    Idle,
}

impl Progress {
    /// [`Progress::Busy`] when `did_work`, otherwise [`Progress::Idle`].
    ///
    /// ```
    /// use roda_engine::Progress;
    /// assert_eq!(Progress::from_work(true), Progress::Busy);
    /// assert_eq!(Progress::from_work(false), Progress::Idle);
    /// ```
    #[inline]
    pub const fn from_work(did_work: bool) -> Self {
        if did_work {
            Progress::Busy
        } else {
            Progress::Idle
        }
    }

    /// True for [`Progress::Busy`].
    #[inline]
    pub const fn is_busy(self) -> bool {
        matches!(self, Progress::Busy)
    }
}

impl From<bool> for Progress {
    #[inline]
    fn from(did_work: bool) -> Self {
        Progress::from_work(did_work)
    }
}

/// The parameters of a [`Backoff`]: how long an idle worker spins, pauses and parks.
///
/// Start from a preset and adjust it with the `with_*` setters:
///
/// | preset | busy polls | pause polls | park timeout | use it for |
/// |---|---|---|---|---|
/// | [`busy_spin`](Self::busy_spin) | unbounded | 0 | never parks | lowest latency; burns a full core |
/// | [`adaptive`](Self::adaptive) (default) | 100 | 1 000 | 50 µs doubling to 1 ms | low latency while busy, < 2% of a core while idle |
/// | [`low_power`](Self::low_power) | 10 | 100 | 1 ms doubling to 10 ms | background stages where wake-up latency matters little |
///
/// ```
/// use roda_engine::WaitStrategy;
/// use std::time::Duration;
///
/// let strategy = WaitStrategy::adaptive()
///     .with_busy_polls(1_000)
///     .with_park_max(Duration::from_micros(500));
/// assert_eq!(strategy.busy_polls, 1_000);
/// assert_eq!(strategy.park_max, Duration::from_micros(500));
/// assert_eq!(WaitStrategy::default(), WaitStrategy::adaptive());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WaitStrategy {
    /// Empty polls answered by re-polling at once. `u32::MAX` means forever: the worker
    /// never pauses or parks.
    pub busy_polls: u32,
    /// Further empty polls each preceded by [`std::hint::spin_loop`].
    pub pause_polls: u32,
    /// First park timeout once spinning is over. A zero value is treated as 1 µs so the
    /// doubling can make progress.
    pub park_min: Duration,
    /// Cap of the doubling park timeout: the wake-up latency bound of an idle worker that
    /// nobody unparks. Values below `park_min` are treated as `park_min`.
    pub park_max: Duration,
}

#[allow(non_upper_case_globals)] // named like the variants of the presets they stand for
impl WaitStrategy {
    /// The [`busy_spin`](Self::busy_spin) preset.
    pub const BusySpin: WaitStrategy = WaitStrategy::busy_spin();
    /// The [`adaptive`](Self::adaptive) preset (the default).
    pub const Adaptive: WaitStrategy = WaitStrategy::adaptive();
    /// The [`low_power`](Self::low_power) preset.
    pub const LowPower: WaitStrategy = WaitStrategy::low_power();

    /// Busy-spin forever: the lowest reaction time, at the price of a full core even
    /// while idle. Never pauses, never parks.
    ///
    /// ```
    /// use roda_engine::WaitStrategy;
    /// assert!(WaitStrategy::busy_spin().never_parks());
    /// ```
    #[must_use]
    pub const fn busy_spin() -> Self {
        WaitStrategy {
            busy_polls: u32::MAX,
            pause_polls: 0,
            park_min: Duration::from_micros(50),
            park_max: Duration::from_millis(1),
        }
    }

    /// The default: 100 busy polls, 1 000 paused polls, then parks starting at 50 µs and
    /// doubling to 1 ms. A worker under steady load never leaves the spin phases; an idle
    /// one costs well under 2% of a core and wakes within 1 ms (sooner when unparked).
    ///
    /// ```
    /// use roda_engine::WaitStrategy;
    /// use std::time::Duration;
    /// let s = WaitStrategy::adaptive();
    /// assert_eq!((s.busy_polls, s.pause_polls), (100, 1_000));
    /// assert_eq!(s.park_max, Duration::from_millis(1));
    /// ```
    #[must_use]
    pub const fn adaptive() -> Self {
        WaitStrategy {
            busy_polls: 100,
            pause_polls: 1_000,
            park_min: Duration::from_micros(50),
            park_max: Duration::from_millis(1),
        }
    }

    /// Few spins, then parks starting at 1 ms and doubling to 10 ms: for background work
    /// where saving power matters more than reacting fast. An idle worker wakes within
    /// 10 ms unless a producer unparks it.
    ///
    /// ```
    /// use roda_engine::WaitStrategy;
    /// use std::time::Duration;
    /// assert_eq!(WaitStrategy::low_power().park_max, Duration::from_millis(10));
    /// ```
    #[must_use]
    pub const fn low_power() -> Self {
        WaitStrategy {
            busy_polls: 10,
            pause_polls: 100,
            park_min: Duration::from_millis(1),
            park_max: Duration::from_millis(10),
        }
    }

    /// Sets [`busy_polls`](Self::busy_polls).
    #[must_use]
    pub const fn with_busy_polls(mut self, busy_polls: u32) -> Self {
        self.busy_polls = busy_polls;
        self
    }

    /// Sets [`pause_polls`](Self::pause_polls).
    #[must_use]
    pub const fn with_pause_polls(mut self, pause_polls: u32) -> Self {
        self.pause_polls = pause_polls;
        self
    }

    /// Sets [`park_min`](Self::park_min).
    #[must_use]
    pub const fn with_park_min(mut self, park_min: Duration) -> Self {
        self.park_min = park_min;
        self
    }

    /// Sets [`park_max`](Self::park_max).
    #[must_use]
    pub const fn with_park_max(mut self, park_max: Duration) -> Self {
        self.park_max = park_max;
        self
    }

    /// True when a worker under this strategy never parks (`busy_polls == u32::MAX`).
    pub const fn never_parks(&self) -> bool {
        self.busy_polls == u32::MAX
    }

    /// The first park timeout actually used (`park_min`, at least 1 µs).
    fn effective_park_min(&self) -> Duration {
        if self.park_min.is_zero() {
            Duration::from_micros(1)
        } else {
            self.park_min
        }
    }

    /// The park cap actually used (`park_max`, at least the effective `park_min`).
    fn effective_park_max(&self) -> Duration {
        self.park_max.max(self.effective_park_min())
    }
}

impl Default for WaitStrategy {
    /// [`WaitStrategy::adaptive`].
    fn default() -> Self {
        WaitStrategy::adaptive()
    }
}

/// The phase a [`Backoff`] is in: what its next [`Backoff::idle`] call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackoffPhase {
    /// Return at once (re-poll).
    Busy,
    /// Issue [`std::hint::spin_loop`], then return.
    Pause,
    /// Park the thread for [`Backoff::current_park_timeout`].
    Park,
}

/// The per-worker wait state machine driven by a [`WaitStrategy`].
///
/// Call [`idle`](Self::idle) after every empty poll and [`reset`](Self::reset) after
/// every poll that did work (or both through [`step`](Self::step)). Neither allocates nor
/// takes a lock; only the park phase makes a system call.
///
/// ```
/// use roda_engine::{Backoff, WaitStrategy};
/// use roda_engine::wait::BackoffPhase;
/// use std::time::Duration;
///
/// let strategy = WaitStrategy::adaptive()
///     .with_busy_polls(2)
///     .with_pause_polls(1)
///     .with_park_min(Duration::from_micros(10))
///     .with_park_max(Duration::from_micros(30));
/// let mut backoff = Backoff::new(strategy);
/// backoff.idle();
/// backoff.idle(); // two busy polls used up
/// assert_eq!(backoff.phase(), BackoffPhase::Pause);
/// backoff.idle();
/// assert!(backoff.is_parked_phase());
/// assert_eq!(backoff.current_park_timeout(), Some(Duration::from_micros(10)));
/// backoff.idle(); // parks up to 10 µs, then doubles
/// assert_eq!(backoff.current_park_timeout(), Some(Duration::from_micros(20)));
/// backoff.idle(); // parks up to 20 µs; 40 µs is capped at 30 µs
/// assert_eq!(backoff.current_park_timeout(), Some(Duration::from_micros(30)));
/// backoff.reset(); // work arrived: back to busy polling
/// assert_eq!(backoff.phase(), BackoffPhase::Busy);
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    strategy: WaitStrategy,
    /// Consecutive empty polls since the last reset. `u64` so it cannot reach the
    /// `busy_polls + pause_polls` threshold by wrapping or saturating.
    polls: u64,
    /// Timeout of the next park.
    park: Duration,
}

impl Backoff {
    /// A backoff at the start of the busy phase.
    pub fn new(strategy: WaitStrategy) -> Self {
        Backoff {
            strategy,
            polls: 0,
            park: strategy.effective_park_min(),
        }
    }

    /// The strategy this backoff follows.
    pub fn strategy(&self) -> &WaitStrategy {
        &self.strategy
    }

    /// Consecutive empty polls since the last [`reset`](Self::reset).
    pub fn idle_polls(&self) -> u64 {
        self.polls
    }

    /// What the next [`idle`](Self::idle) call will do.
    #[inline]
    pub fn phase(&self) -> BackoffPhase {
        let busy = u64::from(self.strategy.busy_polls);
        if self.strategy.never_parks() || self.polls < busy {
            BackoffPhase::Busy
        } else if self.polls < busy + u64::from(self.strategy.pause_polls) {
            BackoffPhase::Pause
        } else {
            BackoffPhase::Park
        }
    }

    /// True when spinning is over and the next [`idle`](Self::idle) parks the thread.
    #[inline]
    pub fn is_parked_phase(&self) -> bool {
        self.phase() == BackoffPhase::Park
    }

    /// The timeout of the next park, or `None` while still spinning.
    ///
    /// This is the wake-up latency bound of a parked worker: it re-polls when the timeout
    /// expires, or sooner when a producer unparks its thread. Under a strategy it never
    /// exceeds [`WaitStrategy::park_max`].
    #[inline]
    pub fn current_park_timeout(&self) -> Option<Duration> {
        if self.is_parked_phase() {
            Some(self.park)
        } else {
            None
        }
    }

    /// Waits as the current phase says, after a poll that found nothing to do.
    ///
    /// Busy phase: returns at once. Pause phase: one [`std::hint::spin_loop`]. Park phase:
    /// [`std::thread::park_timeout`] for the current timeout, which then doubles up to
    /// `park_max`. A park may end early (unpark, or spuriously); the worker just polls again.
    #[inline]
    pub fn idle(&mut self) {
        match self.phase() {
            BackoffPhase::Busy => {
                // `never_parks` keeps busy-spin workers here; saturating avoids any overflow
                // check on a counter that can in principle run for years.
                self.polls = self.polls.saturating_add(1);
            }
            BackoffPhase::Pause => {
                std::hint::spin_loop();
                self.polls += 1;
            }
            BackoffPhase::Park => self.park_cold(),
        }
    }

    #[cold]
    #[inline(never)]
    fn park_cold(&mut self) {
        std::thread::park_timeout(self.park);
        self.park = self
            .park
            .saturating_mul(2)
            .min(self.strategy.effective_park_max());
    }

    /// Returns to the busy phase with the shortest park timeout, after a poll that did work.
    #[inline]
    pub fn reset(&mut self) {
        self.polls = 0;
        self.park = self.strategy.effective_park_min();
    }

    /// [`reset`](Self::reset) on [`Progress::Busy`], [`idle`](Self::idle) on
    /// [`Progress::Idle`]: the one call a worker loop makes after each poll.
    #[inline]
    pub fn step(&mut self, progress: Progress) {
        match progress {
            Progress::Busy => self.reset(),
            Progress::Idle => self.idle(),
        }
    }
}

impl Default for Backoff {
    /// A backoff following [`WaitStrategy::adaptive`].
    fn default() -> Self {
        Backoff::new(WaitStrategy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(busy: u32, pause: u32) -> WaitStrategy {
        WaitStrategy::adaptive()
            .with_busy_polls(busy)
            .with_pause_polls(pause)
            .with_park_min(Duration::from_micros(1))
            .with_park_max(Duration::from_micros(8))
    }

    #[test]
    fn presets_have_documented_values() {
        let b = WaitStrategy::busy_spin();
        assert_eq!(b.busy_polls, u32::MAX);
        assert!(b.never_parks());

        let a = WaitStrategy::adaptive();
        assert_eq!(a.busy_polls, 100);
        assert_eq!(a.pause_polls, 1_000);
        assert_eq!(a.park_min, Duration::from_micros(50));
        assert_eq!(a.park_max, Duration::from_millis(1));
        assert!(!a.never_parks());
        assert_eq!(WaitStrategy::default(), a);

        let l = WaitStrategy::low_power();
        assert_eq!(l.busy_polls, 10);
        assert_eq!(l.pause_polls, 100);
        assert_eq!(l.park_min, Duration::from_millis(1));
        assert_eq!(l.park_max, Duration::from_millis(10));
        assert!(l.park_max >= Duration::from_millis(1));
    }

    #[test]
    fn setters_set_each_field() {
        let s = WaitStrategy::busy_spin()
            .with_busy_polls(1)
            .with_pause_polls(2)
            .with_park_min(Duration::from_micros(3))
            .with_park_max(Duration::from_micros(4));
        assert_eq!(
            s,
            WaitStrategy {
                busy_polls: 1,
                pause_polls: 2,
                park_min: Duration::from_micros(3),
                park_max: Duration::from_micros(4),
            }
        );
    }

    #[test]
    fn phases_follow_poll_counts() {
        let mut b = Backoff::new(tiny(3, 2));
        for i in 0..3 {
            assert_eq!(b.phase(), BackoffPhase::Busy, "poll {i}");
            assert_eq!(b.current_park_timeout(), None);
            b.idle();
        }
        for i in 0..2 {
            assert_eq!(b.phase(), BackoffPhase::Pause, "pause poll {i}");
            assert!(!b.is_parked_phase());
            b.idle();
        }
        assert_eq!(b.idle_polls(), 5);
        assert!(b.is_parked_phase());
        assert_eq!(b.current_park_timeout(), Some(Duration::from_micros(1)));
        b.idle();
        assert!(b.is_parked_phase(), "stays parked until reset");
    }

    #[test]
    fn zero_spin_parks_at_once() {
        let b = Backoff::new(tiny(0, 0));
        assert!(b.is_parked_phase());
    }

    #[test]
    fn park_timeout_doubles_and_caps() {
        let mut b = Backoff::new(tiny(0, 0));
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(b.current_park_timeout().unwrap().as_micros());
            b.idle();
        }
        assert_eq!(seen, [1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn park_cap_that_is_not_a_power_of_two_is_exact() {
        let s = tiny(0, 0)
            .with_park_min(Duration::from_micros(3))
            .with_park_max(Duration::from_micros(10));
        let mut b = Backoff::new(s);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(b.current_park_timeout().unwrap().as_micros());
            b.idle();
        }
        assert_eq!(seen, [3, 6, 10, 10]);
    }

    #[test]
    fn degenerate_park_bounds_are_sanitized() {
        let s = tiny(0, 0)
            .with_park_min(Duration::ZERO)
            .with_park_max(Duration::ZERO);
        let mut b = Backoff::new(s);
        assert_eq!(b.current_park_timeout(), Some(Duration::from_micros(1)));
        b.idle();
        assert_eq!(b.current_park_timeout(), Some(Duration::from_micros(1)));

        let inverted = tiny(0, 0)
            .with_park_min(Duration::from_micros(5))
            .with_park_max(Duration::from_micros(2));
        let mut b = Backoff::new(inverted);
        b.idle();
        assert_eq!(b.current_park_timeout(), Some(Duration::from_micros(5)));
    }

    #[test]
    fn reset_returns_to_busy_with_min_timeout() {
        let mut b = Backoff::new(tiny(1, 1));
        for _ in 0..5 {
            b.idle();
        }
        assert_eq!(b.current_park_timeout(), Some(Duration::from_micros(8)));
        b.reset();
        assert_eq!(b.phase(), BackoffPhase::Busy);
        assert_eq!(b.idle_polls(), 0);
        b.idle();
        b.idle();
        assert_eq!(b.current_park_timeout(), Some(Duration::from_micros(1)));
    }

    #[test]
    fn step_dispatches_on_progress() {
        let mut b = Backoff::new(tiny(2, 0));
        b.step(Progress::Idle);
        b.step(Progress::Idle);
        assert!(b.is_parked_phase());
        b.step(Progress::Busy);
        assert_eq!(b.phase(), BackoffPhase::Busy);
        assert_eq!(Progress::from(true), Progress::Busy);
        assert!(!Progress::from_work(false).is_busy());
    }

    #[test]
    fn busy_spin_never_leaves_busy_phase() {
        let mut b = Backoff::new(WaitStrategy::busy_spin());
        // Start near the threshold a `u32` counter would hit.
        b.polls = u64::from(u32::MAX) - 2;
        for _ in 0..10 {
            b.idle();
            assert_eq!(b.phase(), BackoffPhase::Busy);
        }
        b.polls = u64::MAX;
        b.idle();
        assert_eq!(b.phase(), BackoffPhase::Busy);
        assert_eq!(b.current_park_timeout(), None);
    }

    #[test]
    fn unpark_ends_a_long_park_early() {
        // Wake-up bound: an unparked worker does not sleep out its timeout.
        let s = tiny(0, 0)
            .with_park_min(Duration::from_secs(30))
            .with_park_max(Duration::from_secs(30));
        let worker = std::thread::spawn(move || {
            let mut b = Backoff::new(s);
            let start = std::time::Instant::now();
            b.idle();
            start.elapsed()
        });
        // Unpark repeatedly: an unpark before the park is remembered as a token anyway.
        let waker = worker.thread().clone();
        while !worker.is_finished() {
            waker.unpark();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(worker.join().unwrap() < Duration::from_secs(30));
    }
}

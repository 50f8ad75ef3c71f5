//! Wait strategies: how a Roda worker waits when its poll finds nothing to do.
//!
//! A worker loops over "poll, then report [`Progress`]". After work it resets its
//! [`Backoff`]; after an empty poll it calls [`Backoff::idle`] (or
//! [`Backoff::idle_on`], given what it waits on), which escalates through three phases:
//!
//! 1. **Busy** — return at once and re-poll ([`WaitStrategy::busy_polls`] times). Lowest
//!    latency, one full core.
//! 2. **Pause** — issue [`std::hint::spin_loop`] before re-polling
//!    ([`WaitStrategy::pause_polls`] times). Still on-core, but friendlier to a sibling
//!    hyper-thread and to the memory bus.
//! 3. **Sleep** — the cold path, where the thread uses no CPU:
//!    * given a [`WakeSource`] ([`Backoff::idle_on`]; a pipeline stage waits on its
//!      input journal's wake word, `receive` on the output's): it sleeps in the kernel
//!      until the source's writer publishes, which wakes it within microseconds. The
//!      [`WaitStrategy::safety_timeout`] (100 ms by default) only bounds a lost
//!      wake-up: a net, never the mechanism.
//!    * with nothing to wait on ([`Backoff::idle`]: `run_worker` closures, a writer
//!      waiting for room in a ring), or a source that cannot sleep (its writer is
//!      gone): [`std::thread::park_timeout`] with a timeout that starts at
//!      [`WaitStrategy::park_min`] and doubles after every park up to
//!      [`WaitStrategy::park_max`]; a producer that unparks the thread wakes it sooner.
//!
//! # Wake-up latency bound
//!
//! A worker sleeping on a wake source notices a publish as soon as the kernel wakes it
//! (microseconds). A parked worker notices new work at the latest when its current
//! park timeout expires ([`Backoff::current_park_timeout`]), so there the bound is
//! `park_max` plus one poll, unless a producer unparks it. In the busy and pause phases
//! the worker sees new work on its next poll.
//!
//! # Idle cost
//!
//! Under the default [`WaitStrategy::adaptive`] preset an idle stage sleeps on its input
//! journal and wakes only at its safety timeout (10 times a second) when nothing comes;
//! a parked worker wakes about a thousand times per second for one empty poll each:
//! both well under 2% of a core. [`WaitStrategy::busy_spin`] never sleeps and costs a
//! full core whether or not there is work.
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
/// | [`adaptive`](Self::adaptive) (default) | 100 | 30 | 50 µs doubling to 1 ms | low latency while busy, < 2% of a core while idle |
/// | [`low_power`](Self::low_power) | 10 | 100 | 1 ms doubling to 10 ms | background stages where wake-up latency matters little |
///
/// The park timeouts apply to waits with nothing to wait on ([`Backoff::idle`]). A wait
/// on a [`WakeSource`] ([`Backoff::idle_on`], what pipeline stages and `receive` do)
/// sleeps until the source's next publish instead, re-checking at least every
/// [`safety_timeout`](Self::safety_timeout) (100 ms in every preset), so under both
/// `adaptive` and `low_power` a sleeping stage wakes within microseconds of its input.
///
/// The type is `#[non_exhaustive]`: build it from a preset and the setters.
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
#[non_exhaustive]
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
    /// has nothing to wait on and that nobody unparks. Values below `park_min` are
    /// treated as `park_min`. Not used by waits on a [`WakeSource`], which wake on
    /// publish.
    pub park_max: Duration,
    /// Longest sleep on a [`WakeSource`] before the worker re-checks on its own (a net
    /// against a lost wake-up, never the mechanism; default 100 ms, at least 1 ms). A
    /// longer value costs nothing while wake-ups work and makes an idle stage cheaper.
    pub safety_timeout: Duration,
}

/// The safety timeout of every preset.
const DEFAULT_SAFETY_TIMEOUT: Duration = Duration::from_millis(100);

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
            safety_timeout: DEFAULT_SAFETY_TIMEOUT,
        }
    }

    /// The default: 100 busy polls and 30 paused polls (a few microseconds), then a
    /// sleep on what the worker reads (woken by its writer's publish), or, with nothing
    /// to wait on, parks starting at 50 µs and doubling to 1 ms. A worker under steady
    /// load never leaves the spin phases; an idle one costs well under 2% of a core.
    ///
    /// The spinning is short on purpose: a sleeping stage is woken by the publish within
    /// microseconds, while a long spin keeps a core that the woken thread (or the
    /// sender) may need. On a 2-core machine running a sender and two stages, 1,000
    /// paused polls (about 100 µs) added that much to the median latency of sparse
    /// events; 30 (about 5 µs) matches blocking channels (docs/benchmarks.md, `wake`).
    ///
    /// ```
    /// use roda_engine::WaitStrategy;
    /// use std::time::Duration;
    /// let s = WaitStrategy::adaptive();
    /// assert_eq!((s.busy_polls, s.pause_polls), (100, 30));
    /// assert_eq!(s.park_max, Duration::from_millis(1));
    /// ```
    #[must_use]
    pub const fn adaptive() -> Self {
        WaitStrategy {
            busy_polls: 100,
            pause_polls: 30,
            park_min: Duration::from_micros(50),
            park_max: Duration::from_millis(1),
            safety_timeout: DEFAULT_SAFETY_TIMEOUT,
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
            safety_timeout: DEFAULT_SAFETY_TIMEOUT,
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

    /// Sets [`safety_timeout`](Self::safety_timeout) (values below 1 ms are treated as
    /// 1 ms).
    #[must_use]
    pub const fn with_safety_timeout(mut self, timeout: Duration) -> Self {
        self.safety_timeout = timeout;
        self
    }

    /// The safety timeout actually used (at least 1 ms).
    fn effective_safety_timeout(&self) -> Duration {
        if self.safety_timeout.as_millis() == 0 {
            Duration::from_millis(1)
        } else {
            self.safety_timeout
        }
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

/// What a worker waits on when it sleeps: typically a journal reader, whose writer's
/// publish wakes it (wake on publish). See [`Backoff::idle_on`].
///
/// ```
/// use roda_engine::{Backoff, Progress, WaitStrategy, WakeSource};
/// use roda_store::SegmentedJournal;
/// use std::time::Duration;
///
/// struct Input(roda_store::SegmentedReader<u64>);
///
/// impl WakeSource for Input {
///     fn sleep(&mut self, timeout: Duration) -> bool {
///         if self.0.writer_closed() {
///             return false; // nothing will wake us: park instead
///         }
///         self.0.wait_timeout(timeout);
///         true
///     }
/// }
///
/// # fn main() -> roda_core::Result<()> {
/// let mut journal = SegmentedJournal::<u64>::options().wake(true).in_memory(64, 2)?;
/// let mut input = Input(journal.try_reader()?);
/// let writer = std::thread::spawn(move || {
///     for i in 0..3u64 {
///         std::thread::sleep(Duration::from_millis(5));
///         journal.append(&i);
///     }
///     journal // kept open until joined
/// });
/// let mut backoff = Backoff::new(WaitStrategy::adaptive());
/// let mut sum = 0;
/// let mut seen = 0;
/// while seen < 3 {
///     let progress = match input.0.next() {
///         Some(x) => {
///             sum += *x;
///             seen += 1;
///             Progress::Busy
///         }
///         None => Progress::Idle,
///     };
///     backoff.step_on(progress, &mut input); // sleeps until the next append
/// }
/// assert_eq!(sum, 3);
/// assert!(backoff.sleeps() >= 1);
/// writer.join().unwrap();
/// # Ok(()) }
/// ```
pub trait WakeSource {
    /// Sleeps until the source may have work (its writer published, or whatever else
    /// should end the wait, such as a stop request, happened) or `timeout` passed; a
    /// spurious return is fine (the worker polls and sleeps again). Returns false, at
    /// once, when it cannot sleep (nothing would wake it, e.g. its writer is gone):
    /// the backoff then parks as it does without a source.
    fn sleep(&mut self, timeout: Duration) -> bool;
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
    /// Sleeps on a wake source so far (each ended by a wake-up or the safety timeout).
    sleeps: u64,
}

impl Backoff {
    /// A backoff at the start of the busy phase.
    pub fn new(strategy: WaitStrategy) -> Self {
        Backoff {
            strategy,
            polls: 0,
            park: strategy.effective_park_min(),
            sleeps: 0,
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

    /// Waits as the current phase says, after a poll that found nothing to do, sleeping
    /// on `source` in the last phase: [`idle`](Self::idle), except that instead of
    /// parking it calls [`WakeSource::sleep`] with the strategy's
    /// [`safety_timeout`](WaitStrategy::safety_timeout), so the worker wakes when the
    /// source's writer publishes. If the source cannot sleep it parks as `idle` does.
    #[inline]
    pub fn idle_on<W: WakeSource + ?Sized>(&mut self, source: &mut W) {
        if self.phase() == BackoffPhase::Park {
            self.sleep_cold(source);
        } else {
            self.idle();
        }
    }

    #[cold]
    #[inline(never)]
    fn sleep_cold<W: WakeSource + ?Sized>(&mut self, source: &mut W) {
        if source.sleep(self.strategy.effective_safety_timeout()) {
            self.sleeps += 1;
        } else {
            self.park_cold();
        }
    }

    /// Sleeps on a wake source so far ([`idle_on`](Self::idle_on)): each ended by a
    /// wake-up (a publish, a stop) or by the safety timeout.
    pub fn sleeps(&self) -> u64 {
        self.sleeps
    }

    /// [`reset`](Self::reset) on [`Progress::Busy`], [`idle_on`](Self::idle_on) on
    /// [`Progress::Idle`].
    #[inline]
    pub fn step_on<W: WakeSource + ?Sized>(&mut self, progress: Progress, source: &mut W) {
        match progress {
            Progress::Busy => self.reset(),
            Progress::Idle => self.idle_on(source),
        }
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
        assert_eq!(a.pause_polls, 30);
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
                safety_timeout: DEFAULT_SAFETY_TIMEOUT,
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

    /// A source that records the timeouts it is given, and whether it can sleep.
    struct Recorder {
        can_sleep: bool,
        timeouts: Vec<Duration>,
    }

    impl WakeSource for Recorder {
        fn sleep(&mut self, timeout: Duration) -> bool {
            self.timeouts.push(timeout);
            self.can_sleep
        }
    }

    #[test]
    fn the_last_phase_sleeps_on_the_source_with_the_safety_timeout() {
        let strategy = tiny(2, 1).with_safety_timeout(Duration::from_secs(10));
        let mut b = Backoff::new(strategy);
        let mut source = Recorder {
            can_sleep: true,
            timeouts: Vec::new(),
        };
        for _ in 0..3 {
            b.idle_on(&mut source); // busy, busy, pause: the source is not asked
        }
        assert!(source.timeouts.is_empty());
        b.idle_on(&mut source);
        b.step_on(Progress::Idle, &mut source);
        assert_eq!(source.timeouts, [Duration::from_secs(10); 2]);
        assert_eq!(b.sleeps(), 2);
        assert_eq!(
            b.current_park_timeout(),
            Some(Duration::from_micros(1)),
            "sleeping on a source does not escalate the park timeout"
        );
        b.step_on(Progress::Busy, &mut source);
        assert_eq!(b.phase(), BackoffPhase::Busy);
    }

    #[test]
    fn a_source_that_cannot_sleep_falls_back_to_parking() {
        let mut b = Backoff::new(tiny(0, 0));
        let mut source = Recorder {
            can_sleep: false,
            timeouts: Vec::new(),
        };
        b.idle_on(&mut source);
        b.idle_on(&mut source);
        assert_eq!(source.timeouts.len(), 2);
        assert_eq!(b.sleeps(), 0);
        // Parked twice: 1 µs then 2 µs, now 4 µs.
        assert_eq!(b.current_park_timeout(), Some(Duration::from_micros(4)));
    }

    #[test]
    fn busy_spin_never_asks_its_source() {
        let mut b = Backoff::new(WaitStrategy::busy_spin());
        let mut source = Recorder {
            can_sleep: true,
            timeouts: Vec::new(),
        };
        for _ in 0..10_000 {
            b.idle_on(&mut source);
        }
        assert!(source.timeouts.is_empty());
    }

    #[test]
    fn safety_timeout_has_a_floor_and_a_default() {
        assert_eq!(
            WaitStrategy::adaptive().safety_timeout,
            Duration::from_millis(100)
        );
        assert_eq!(
            WaitStrategy::low_power().safety_timeout,
            Duration::from_millis(100)
        );
        let mut b = Backoff::new(tiny(0, 0).with_safety_timeout(Duration::ZERO));
        let mut source = Recorder {
            can_sleep: true,
            timeouts: Vec::new(),
        };
        b.idle_on(&mut source);
        assert_eq!(source.timeouts, [Duration::from_millis(1)]);
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

//! A world's clock: [`TickGrid`], the instants every world of a graph
//! starts its ticks at (a server's one clock), and `Clock`, one world's
//! pacing on it — when tick `t` is due, how a late tick rejoins the grid
//! (within [`LATE_STEPS`] of a period), and the wait that a control
//! message or a stats wake-up interrupts.

use super::*;

/// The instants at which a graph's worlds start their ticks: one clock for
/// every session of a graph (see [`WorldConfig::tick_grid`]). A world paced
/// at `fps` starts its ticks at `epoch + k / fps`; worlds at the same rate
/// tick in step, however late each one opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickGrid {
    pub(super) epoch: Instant,
}

impl TickGrid {
    /// A grid whose instants start now.
    pub fn new() -> Self {
        TickGrid {
            epoch: Instant::now(),
        }
    }

    /// The first instant of the grid of `period` at or after `now`.
    pub fn next_at(&self, now: Instant, period: Duration) -> Instant {
        let Some(since) = now.checked_duration_since(self.epoch) else {
            return self.epoch;
        };
        let period_ns = period.as_nanos().max(1);
        let steps = since.as_nanos().div_ceil(period_ns);
        let offset = steps.saturating_mul(period_ns);
        u64::try_from(offset)
            .ok()
            .and_then(|ns| self.epoch.checked_add(Duration::from_nanos(ns)))
            .unwrap_or(now)
    }
}

impl Default for TickGrid {
    fn default() -> Self {
        Self::new()
    }
}

/// A late tick on a [`TickGrid`] waits at most this fraction of a period
/// (1/8) for the grid's next sub-instant.
pub const LATE_STEPS: u32 = 8;

/// The graph's clock: tick `t` starts no earlier than `base + (t − base_tick) / fps`.
pub(super) struct Clock {
    pub(super) period: Option<Duration>,
    pub(super) base: Instant,
    pub(super) base_tick: u64,
    /// Bases snap to this grid's instants (a server's shared clock).
    pub(super) grid: Option<TickGrid>,
    /// A late tick on the grid and when it starts (kept while a control or
    /// a stats wake-up interrupts its short wait).
    pub(super) late_start: Option<(u64, Instant)>,
}

/// How a wait for a tick's time ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waited {
    /// The tick's time came (or the world is not paced).
    OnTime,
    /// The tick was already late by more than a period (the clock restarts).
    Late,
    /// Something needs the tick thread first: a control message arrived
    /// (a stop, a rebuilt graph) or `wake` passed.
    Interrupted,
}

/// A tick period for `fps` ticks per second; `None` (as fast as possible)
/// for no rate or one that is not a positive number. A rate too slow for a
/// `Duration` (1e-300) waits the longest period there is: a stop still ends
/// the wait at once.
pub(super) fn period(fps: Option<f64>) -> Option<Duration> {
    fps.filter(|f| f.is_finite() && *f > 0.0)
        .map(|f| Duration::try_from_secs_f64(1.0 / f).unwrap_or(Duration::MAX))
}

impl Clock {
    pub(super) fn new(fps: Option<f64>, tick: u64, grid: Option<TickGrid>) -> Self {
        let mut clock = Clock {
            period: period(fps),
            base: Instant::now(),
            base_tick: tick,
            grid,
            late_start: None,
        };
        clock.rebase(tick);
        clock
    }

    /// Restarts the clock at `tick` (after a pause: no burst of catch-up
    /// ticks): now, or the grid's next instant.
    pub(super) fn rebase(&mut self, tick: u64) {
        self.rebase_at(tick, Instant::now());
    }

    pub(super) fn rebase_at(&mut self, tick: u64, now: Instant) {
        self.late_start = None;
        self.base = match (self.grid, self.period) {
            (Some(grid), Some(period)) => grid.next_at(now, period),
            _ => now,
        };
        self.base_tick = tick;
    }

    /// A new rate from `tick` on (a reload changed the graph's fps).
    pub(super) fn retime(&mut self, fps: Option<f64>, tick: u64) {
        self.period = period(fps);
        self.rebase(tick);
    }

    /// When tick `tick` is due on a clock of `period`.
    pub(super) fn due(&self, tick: u64, period: Duration) -> Option<Instant> {
        let n = u32::try_from(tick.saturating_sub(self.base_tick)).unwrap_or(u32::MAX);
        self.base.checked_add(period.saturating_mul(n))
    }

    /// Tick `tick` is more than a period late at `now`. Without a grid the
    /// clock restarts from it and it starts now (`None`). On a grid it
    /// starts at the grid's next [`LATE_STEPS`]th of a period (returned), so
    /// worlds that fell behind together start together again (their model
    /// calls fuse), and the ticks after it are back on the grid's instants.
    pub(super) fn late_at(&mut self, tick: u64, now: Instant, period: Duration) -> Option<Instant> {
        let Some(grid) = self.grid else {
            self.rebase_at(tick, now);
            return None;
        };
        let start = grid.next_at(now, period / LATE_STEPS);
        self.base = grid.next_at(start + Duration::from_nanos(1), period);
        self.base_tick = tick.saturating_add(1);
        self.late_start = Some((tick, start));
        Some(start)
    }

    /// Waits for tick `tick`'s start, or until a message arrives on
    /// `controls` or `wake` passes, whichever is first (a stop never waits
    /// for the next tick). Never sleeps blind: the wait is on the channel.
    pub(super) fn wait(
        &mut self,
        tick: u64,
        controls: &Receiver<Control>,
        wake: Option<Instant>,
    ) -> Waited {
        let Some(period) = self.period else {
            return Waited::OnTime;
        };
        // `None`: further away than an `Instant` reaches; only a control ends it.
        let now = Instant::now();
        let pending = self.late_start.filter(|(t, _)| *t == tick);
        let (due, late) = match pending.map(|(_, start)| start).or(self.due(tick, period)) {
            // A late tick already placed on the grid (its wait was interrupted).
            Some(start) if pending.is_some() => (Some(start), true),
            Some(due) if now >= due && now - due > period => {
                match self.late_at(tick, now, period) {
                    None => return Waited::Late,
                    start => (start, true),
                }
            }
            Some(due) if now >= due => return Waited::OnTime,
            due => (due, false),
        };
        let until = [due, wake].into_iter().flatten().min();
        let mut select = crossbeam_channel::Select::new();
        select.recv(controls);
        let ready = match until {
            Some(until) => select.ready_deadline(until).is_ok(),
            None => {
                select.ready();
                true
            }
        };
        if ready || due.is_none_or(|due| Instant::now() < due) {
            Waited::Interrupted
        } else if late {
            self.late_start = None;
            Waited::Late
        } else {
            Waited::OnTime
        }
    }
}

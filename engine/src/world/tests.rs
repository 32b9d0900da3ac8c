//! The world's unit tests: the tick grid, late worlds rejoining it, the
//! clock's waits.

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_grid_gives_its_next_instant_at_or_after_now() {
    let grid = TickGrid::new();
    let e = grid.epoch;
    let p = 50 * MS;
    assert_eq!(grid.next_at(e, p), e);
    assert_eq!(grid.next_at(e + Duration::from_nanos(1), p), e + p);
    assert_eq!(grid.next_at(e + p, p), e + p);
    assert_eq!(grid.next_at(e + 120 * MS, p), e + 150 * MS);
    // Before the epoch (a clock read before the grid was made).
    if let Some(before) = e.checked_sub(MS) {
        assert_eq!(grid.next_at(before, p), e);
    }
}

/// Worlds opened at different times on one grid start their ticks at
/// the same instants; without a grid each keeps its own phase.
#[test]
fn worlds_on_one_grid_tick_in_step_however_late_they_open() {
    let grid = TickGrid::new();
    let (e, p) = (grid.epoch, 50 * MS);
    let clock_at = |opened: Duration, first_tick: u64, grid: Option<TickGrid>| {
        let mut clock = Clock {
            period: Some(p),
            base: e,
            base_tick: 0,
            grid,
            late_start: None,
        };
        clock.rebase_at(first_tick, e + opened);
        clock
    };
    let early = clock_at(Duration::ZERO, 0, Some(grid));
    let late = clock_at(37 * MS, 0, Some(grid));
    let restored = clock_at(260 * MS, 40, Some(grid));
    assert_eq!(early.due(2, p), Some(e + 100 * MS));
    assert_eq!(late.due(1, p), Some(e + 100 * MS));
    assert_eq!(restored.due(41, p), Some(e + 350 * MS));
    for clock in [&early, &late, &restored] {
        for tick in clock.base_tick..clock.base_tick + 5 {
            let due = clock.due(tick, p).unwrap() - e;
            assert!(due.as_nanos() % p.as_nanos() == 0, "{due:?}");
        }
    }
    let own = clock_at(37 * MS, 0, None);
    assert_eq!(own.due(1, p), Some(e + 87 * MS));
}

/// A late tick's short wait for the grid, interrupted (a control, a
/// stats wake-up), resumes at the same start and still counts as late.
#[test]
fn an_interrupted_late_wait_resumes_at_the_same_start() {
    let grid = TickGrid::new();
    let p = 400 * MS;
    let mut clock = Clock {
        period: Some(p),
        // Tick 3 was due 0.8 s ago: more than a period late.
        base: Instant::now()
            .checked_sub(Duration::from_secs(2))
            .expect("the clock has run 2 s"),
        base_tick: 0,
        grid: Some(grid),
        late_start: None,
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    tx.send(Control::Stop).unwrap();
    assert_eq!(clock.wait(3, &rx, None), Waited::Interrupted);
    let (tick, start) = clock.late_start.expect("the late tick is placed");
    assert_eq!(tick, 3);
    rx.try_recv().unwrap();
    // At most an eighth of a period (50 ms) later: late, at that start.
    assert_eq!(clock.wait(3, &rx, None), Waited::Late);
    assert!(Instant::now() >= start);
    assert_eq!(clock.late_start, None);
    assert_eq!(clock.base_tick, 4);
}

/// A world more than a period behind starts its late tick at the grid's
/// next eighth of a period and its next one on the grid, back in step.
#[test]
fn a_late_world_rejoins_the_grid_at_its_next_instant() {
    let grid = TickGrid::new();
    let (e, p) = (grid.epoch, 50 * MS);
    let mut clock = Clock {
        period: Some(p),
        base: e,
        base_tick: 0,
        grid: Some(grid),
        late_start: None,
    };
    // Tick 3 was due at 150 ms; at 260 ms it waits for the next eighth
    // of a period (262.5 ms), and tick 4 is back on the grid.
    let start = clock.late_at(3, e + 260 * MS, p);
    assert_eq!(start, Some(e + Duration::from_micros(262_500)));
    // Kept for a retry of tick 3's wait (a stats wake-up interrupted it).
    assert_eq!(
        clock.late_start,
        Some((3, e + Duration::from_micros(262_500)))
    );
    assert_eq!(clock.due(4, p), Some(e + 300 * MS));
    assert_eq!(clock.due(5, p), Some(e + 350 * MS));
    // Late just before a grid instant: the next tick is a period on.
    let start = clock.late_at(9, e + 499 * MS, p);
    assert_eq!(start, Some(e + 500 * MS));
    assert_eq!(clock.due(10, p), Some(e + 550 * MS));
    let mut own = Clock {
        grid: None,
        ..clock
    };
    assert_eq!(own.late_at(3, e + 260 * MS, p), None);
    assert_eq!(own.late_start, None);
    assert_eq!(own.due(4, p), Some(e + 310 * MS));
}

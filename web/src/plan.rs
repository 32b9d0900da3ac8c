//! Memory plans of per-player graphs: how many players' worlds a server
//! may run before the machine runs out of memory.
//!
//! - [`MemoryBudget`] and [`memory_budget`] — what players' worlds may use:
//!   `--memory SIZE`, or 80% of the machine's memory.
//! - [`measure_world`] and [`measure_rss_per_world`] — a throwaway world
//!   run for two ticks (what one world holds once it runs), and what one
//!   more world adds to the process's resident memory.
//! - [`bound_worlds`] — each graph's [`MemoryPlan`] said in one log line,
//!   and the number of worlds of it that fit the budget (less what the
//!   server holds now, shared evenly by the per-player graphs).

use std::time::{Duration, Instant};
use wgraph_engine::memory::{MemoryPlan, human_bytes};
use wgraph_engine::model::Backend;
use wgraph_engine::world::WorldEvent;
use wgraph_session::Session;

/// The memory players' worlds may use, and how the plan line says where
/// the figure comes from (`--memory 2.0 GiB (80% of …)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    /// The budget in bytes.
    pub bytes: u64,
    /// Where it comes from, for the plan line.
    pub said: String,
}

/// The memory players' worlds may use: `flag` (`--memory`, a size), or 80%
/// of what the machine has (`/proc/meminfo`); `None` where neither is
/// known. The error is the flag's.
pub fn memory_budget(flag: Option<&str>) -> Result<Option<MemoryBudget>, String> {
    if let Some(text) = flag {
        let bytes = wgraph_engine::memory::parse_bytes(text)?;
        return Ok(Some(MemoryBudget {
            bytes,
            said: format!("--memory {}", human_bytes(bytes)),
        }));
    }
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    Ok(total.map(|t| {
        let bytes = t / 5 * 4;
        MemoryBudget {
            bytes,
            said: format!(
                "--memory {} (80% of this machine's {})",
                human_bytes(bytes),
                human_bytes(t)
            ),
        }
    }))
}

/// Runs a throwaway world of a per-player graph for two ticks (at most
/// about five seconds) and snapshots it: what one player's world holds
/// once it runs. A world that fails here would fail for every player.
pub fn measure_world<B: Backend + 'static>(
    session: &mut Session<B>,
) -> Result<Option<serde_json::Value>, String> {
    let handle = session.handle();
    let started = Instant::now();
    let mut ticks = 0;
    session
        .run(&mut |event| {
            if matches!(event, WorldEvent::Tick { .. }) {
                ticks += 1;
            }
            if ticks >= 2 || started.elapsed() > Duration::from_secs(5) {
                handle.stop();
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(session.world.snapshot().ok())
}

/// Resident bytes one more world adds: `count` worlds opened (models
/// already loaded), each run two ticks on a thread of its own as a server
/// runs them, held together; the growth of this process over `count`.
/// `None` where resident memory cannot be read or a world fails.
pub fn measure_rss_per_world<B: Backend + 'static>(
    open: &(dyn Fn() -> Result<Session<B>, String> + Sync),
    count: usize,
) -> Option<u64> {
    let before = wgraph_session::rss::current_rss_kib()?;
    let worlds: Vec<Session<B>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..count)
            .map(|_| {
                s.spawn(|| {
                    let mut session = open().ok()?;
                    measure_world(&mut session).ok()?;
                    Some(session)
                })
            })
            .collect();
        threads
            .into_iter()
            .filter_map(|t| t.join().ok().flatten())
            .collect()
    });
    let after = wgraph_session::rss::current_rss_kib()?;
    (worlds.len() == count && count > 0).then(|| after.saturating_sub(before) * 1024 / count as u64)
}

/// Says each per-player graph's memory plan (`plans`: name and plan) in a
/// line to `log` and bounds its worlds by it: `budget` less `in_use` (what
/// the server holds now: the models are loaded), shared evenly by the
/// graphs. Returns each graph's bound (`None`: no budget known, so
/// `max_worlds` only); the error: a graph has no room for a single world.
pub fn bound_worlds(
    plans: &[(String, MemoryPlan)],
    budget: Option<&MemoryBudget>,
    max_worlds: usize,
    in_use: u64,
    log: &dyn Fn(&str),
) -> Result<Vec<Option<usize>>, String> {
    let mut bounds = Vec::with_capacity(plans.len());
    for (name, plan) in plans {
        let mut line = format!(
            "{name}: memory plan: model weights {} (loaded once, shared by every player); each player's world {} ({}state {} + {} of values per tick{})",
            human_bytes(plan.weights_bytes),
            human_bytes(plan.per_world()),
            if plan.measured_bytes.is_some() {
                "measured: two worlds running, without viewers; of it "
            } else {
                ""
            },
            human_bytes(plan.state_bytes),
            human_bytes(plan.values_bytes),
            if plan.unknown_values > 0 {
                format!(
                    "; {} outputs of unknown shape not counted",
                    plan.unknown_values
                )
            } else {
                String::new()
            }
        );
        match budget {
            Some(MemoryBudget { bytes, said }) => {
                let share = bytes.saturating_sub(in_use) / plans.len() as u64;
                let fit = plan.worlds_that_fit(share);
                let fit_usize = usize::try_from(fit).unwrap_or(usize::MAX);
                line.push_str(&format!(
                    "; {said}, {} in use now{}: room for {fit} worlds",
                    human_bytes(in_use),
                    if plans.len() > 1 {
                        format!(", shared by {} graphs", plans.len())
                    } else {
                        String::new()
                    }
                ));
                if fit_usize < max_worlds {
                    line.push_str(&format!(
                        " (fewer than --max-worlds {max_worlds}: the plan is the limit)"
                    ));
                } else {
                    line.push_str(&format!(" (--max-worlds {max_worlds} is the limit)"));
                }
                if fit == 0 {
                    log(&line);
                    return Err(format!(
                        "{said} leaves no room for a world of {name}: {} in use now, {} per world",
                        human_bytes(in_use),
                        human_bytes(plan.per_world())
                    ));
                }
                bounds.push(Some(fit_usize));
            }
            None => {
                line.push_str("; the machine's memory is not known: bounded by --max-worlds only");
                bounds.push(None);
            }
        }
        log(&line);
    }
    Ok(bounds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn plan(state: u64, values: u64) -> MemoryPlan {
        MemoryPlan {
            weights_bytes: 1 << 30,
            state_bytes: state,
            values_bytes: values,
            unknown_values: 0,
            measured_bytes: None,
        }
    }

    #[test]
    fn the_budget_less_what_is_in_use_is_shared_by_the_graphs() {
        const MIB: u64 = 1 << 20;
        let budget = MemoryBudget {
            bytes: 1000 * MIB,
            said: "--memory 1000 MiB".into(),
        };
        let plans = [
            ("a".to_string(), plan(3 * MIB, MIB)),
            ("b".to_string(), plan(90 * MIB, 10 * MIB)),
        ];
        let lines = RefCell::new(Vec::new());
        let log = |l: &str| lines.borrow_mut().push(l.to_string());
        // 800 MiB left, 400 each: 100 worlds of `a`, 4 of `b`.
        let bounds = bound_worlds(&plans, Some(&budget), 10, 200 * MIB, &log).unwrap();
        assert_eq!(bounds, [Some(100), Some(4)]);
        let lines = lines.into_inner();
        assert!(
            lines[0].contains("(--max-worlds 10 is the limit)"),
            "{lines:?}"
        );
        assert!(lines[1].contains("the plan is the limit"), "{lines:?}");
        assert!(lines[1].contains("shared by 2 graphs"), "{lines:?}");
        // No room for one world of `b`: an error naming it.
        let e = bound_worlds(&plans, Some(&budget), 10, 950 * MIB, &|_| {}).unwrap_err();
        assert!(e.contains("leaves no room for a world of b"), "{e}");
        // No budget known: bounded by --max-worlds only.
        assert_eq!(
            bound_worlds(&plans, None, 10, 0, &|_| {}).unwrap(),
            [None, None]
        );
    }

    #[test]
    fn an_explicit_memory_flag_is_the_budget() {
        let budget = memory_budget(Some("2GiB")).unwrap().unwrap();
        assert_eq!(budget.bytes, 2 << 30);
        assert!(memory_budget(Some("lots")).is_err());
    }
}

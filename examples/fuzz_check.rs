//! The graph loader and checker under mutated inputs (see `tests/fuzz`).
//!
//! ```sh
//! cargo run --release --example fuzz_check -- --runs 1000000 [--seed S] [--bound-ms MS]
//! ```
//!
//! Prints executions per second as it goes and a summary; exits 1 when an
//! input panicked (saved under `target/fuzz-crashes/`), 2 when one took
//! longer than the bound; when the process aborts (an allocation failure),
//! `target/fuzz-crashes/last-input.world` is the input that was running.

#[path = "../tests/fuzz/mod.rs"]
mod fuzz;

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut options = fuzz::Options {
        runs: 100_000,
        seed: 1,
        time_bound: Duration::from_secs(5),
        crash_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes"),
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--runs", Some(v)) => options.runs = v,
            ("--seed", Some(v)) => options.seed = v,
            ("--bound-ms", Some(v)) => options.time_bound = Duration::from_millis(v),
            _ => {
                eprintln!("usage: fuzz_check [--runs N] [--seed S] [--bound-ms MS]");
                std::process::exit(2);
            }
        }
    }
    let every = (options.runs / 20).max(1000);
    let report = fuzz::run(&options, every);
    println!(
        "fuzz_check: {} executions from {} seeds ({} parsed, {} built) in {:.1} s ({:.0}/s), {} crashes, slowest input {:.1} ms",
        report.executions,
        report.seeds,
        report.parsed,
        report.built,
        report.elapsed.as_secs_f64(),
        report.per_second(),
        report.crashes.len(),
        report.slowest.as_secs_f64() * 1e3
    );
    for (path, message) in &report.crashes {
        println!("  {}: {message}", path.display());
    }
    if !report.crashes.is_empty() {
        std::process::exit(1);
    }
}

//! An in-tree fuzzer over the graph loader and checker: what `cargo fuzz`
//! would do, on a stable toolchain and without new dependencies.
//!
//! Seeds are every `.world` file of `graphs/`, `examples/` and
//! `tests/fixtures/`. Each execution takes a seed (or an earlier input),
//! applies a few byte- and token-level mutations (insert, delete,
//! duplicate, splice from another seed, replace with a grammar keyword,
//! a node kind, a parameter name or an awkward value), then loads it
//! (parse, includes — the seeds are served from memory, so includes
//! resolve), validates it, builds it against the real node registry (no
//! model backend: model declarations are errors, which is fine) and renders
//! the diagnostics. A panic is a crash: the input is saved and the run goes
//! on. A watchdog aborts the process if one input takes longer than the
//! time bound, saving that input first. An abort (a failed allocation)
//! cannot be caught; the input that was running is then the file
//! `last-input.world` in the crash folder.
//!
//! Used twice: a short run in `tests/cli/faults.rs` and the long
//! run of `examples/fuzz_check.rs`:
//!
//! ```sh
//! cargo run --release --example fuzz_check -- --runs 1000000
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wgraph_engine::load::{LoadError, LoadOptions, load};
use wgraph_engine::node::{DisplayTarget, OutputConfig};
use wgraph_grammar::FileLoader;
use wgraph_grammar::diagnostic::render;

/// Options of a fuzzing run.
#[derive(Debug, Clone)]
pub struct Options {
    pub runs: u64,
    pub seed: u64,
    /// The longest one input may take before the watchdog aborts.
    pub time_bound: Duration,
    /// Where crashing (or too slow) inputs are written.
    pub crash_dir: PathBuf,
    /// The repository root (seeds are read from it).
    pub root: PathBuf,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    pub executions: u64,
    pub elapsed: Duration,
    /// Inputs that panicked (saved under `crash_dir`), with the message.
    pub crashes: Vec<(PathBuf, String)>,
    /// The slowest input's time.
    pub slowest: Duration,
    pub seeds: usize,
    /// Inputs that parsed (includes too) and reached the checker, and
    /// those that built into a graph.
    pub parsed: u64,
    pub built: u64,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// SplitMix64: a small, seeded, portable generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The longest input the mutator makes.
const MAX_LEN: usize = 64 << 10;

/// Every `.world` file under `dir`, recursively.
fn world_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            world_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "world") {
            out.push(p);
        }
    }
}

/// Tokens worth inserting: the grammar's words and punctuation, every node
/// kind and parameter name, and values that probe limits.
fn dictionary() -> Vec<Vec<u8>> {
    let mut words: Vec<String> = [
        "node",
        "model",
        "include",
        "world",
        "feedback",
        "init",
        "zeros",
        "fill",
        "npy",
        "->",
        "@",
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "=",
        ",",
        ".",
        ":",
        "x",
        "\"",
        "//",
        "\n",
        " ",
        "H",
        "W",
        "F",
        "true",
        "false",
        "0",
        "-1",
        "1.5",
        "-0.0",
        "1e308",
        "1e309",
        "99999999999",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775808",
        "1x3xHxW",
        "1x99999x99999x99999",
        "0x0",
        "[1, 3, H, W]",
        "\"\\u{1b}\"",
        "\"\\\"\"",
        "\"\\q\"",
        "\u{1b}[31m",
        "\0",
        "\u{202e}",
        "é",
        "\"../../../../dev/zero\"",
        "\"/dev/zero\"",
        "\"examples/assets/start.png\"",
        "\"examples/assets/start_depth.npy\"",
        "\"examples/actions/walk.txt\"",
        "\"parts/camera.world\"",
        "@denoiser",
        "cpu",
        "cuda",
        "resolution = 64x64",
        "frames_per_tick = 3",
        "degrade = [\"a.b = 1\"]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let registry = wgraph_nodes::registry();
    for k in registry.kinds() {
        words.push(k.name().to_string());
        for p in k.params() {
            words.push(p.name.to_string());
            words.push(format!("{} = ", p.name));
        }
    }
    for s in wgraph_engine::settings::SETTINGS {
        words.push(s.name.to_string());
    }
    words.into_iter().map(String::into_bytes).collect()
}

/// Serves the seeds from memory at their repository-relative paths, so
/// includes resolve without touching the disk.
struct Corpus(HashMap<PathBuf, Vec<u8>>);

impl FileLoader for Corpus {
    fn load(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }
}

/// One mutation of `input`.
fn mutate(input: &mut Vec<u8>, rng: &mut Rng, seeds: &[Vec<u8>], dict: &[Vec<u8>]) {
    let len = input.len();
    let at = rng.below(len + 1);
    match rng.below(9) {
        // Insert a random byte (often printable).
        0 => {
            let b = if rng.chance(70) {
                b' ' + rng.below(95) as u8
            } else {
                rng.next() as u8
            };
            input.insert(at, b);
        }
        // Delete a range.
        1 if len > 0 => {
            let start = at.min(len - 1);
            let n = 1 + rng.below(16.min(len - start));
            input.drain(start..start + n);
        }
        // Duplicate a range in place.
        2 if len > 0 => {
            let start = at.min(len - 1);
            let n = 1 + rng.below(64.min(len - start));
            let piece = input[start..start + n].to_vec();
            let to = rng.below(len + 1);
            input.splice(to..to, piece);
        }
        // Splice a piece of another seed in.
        3 => {
            let other = &seeds[rng.below(seeds.len())];
            if !other.is_empty() {
                let start = rng.below(other.len());
                let n = 1 + rng.below(128.min(other.len() - start));
                input.splice(at..at, other[start..start + n].iter().copied());
            }
        }
        // Replace a range with a dictionary token.
        4 => {
            let word = &dict[rng.below(dict.len())];
            let n = rng.below(8).min(len - at);
            input.splice(at..at + n, word.iter().copied());
        }
        // Insert a dictionary token.
        5 | 6 => {
            let word = &dict[rng.below(dict.len())];
            input.splice(at..at, word.iter().copied());
        }
        // Flip a bit.
        7 if len > 0 => {
            let i = at.min(len - 1);
            input[i] ^= 1 << rng.below(8);
        }
        // Swap two whitespace-separated tokens.
        _ => {
            let text = String::from_utf8_lossy(input).into_owned();
            let tokens: Vec<&str> = text.split_inclusive(char::is_whitespace).collect();
            if tokens.len() > 1 {
                let (a, b) = (rng.below(tokens.len()), rng.below(tokens.len()));
                let mut t: Vec<&str> = tokens.clone();
                t.swap(a, b);
                *input = t.concat().into_bytes();
            }
        }
    }
    input.truncate(MAX_LEN);
}

/// How far one input got.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reached {
    Parse,
    Check,
    Built,
}

/// Parses, validates, builds and renders one input (the work under test).
fn check_one(
    name: &Path,
    bytes: &[u8],
    corpus: &Corpus,
    registry: &wgraph_engine::registry::Registry,
) -> Reached {
    let mut files = HashMap::new();
    files.insert(name.to_path_buf(), bytes.to_vec());
    let loader = Overlay {
        top: files,
        under: corpus,
    };
    let mut options = LoadOptions::new(registry);
    options.output = OutputConfig {
        dir: PathBuf::from("/nonexistent/wgraph-fuzz"),
        display: DisplayTarget::Discard,
        ..OutputConfig::default()
    };
    // The engine's front door, as every command loads a graph.
    let (sources, diags, reached) = match load(name, &options, &loader) {
        Ok(loaded) => (loaded.sources, loaded.graph.warnings, Reached::Built),
        Err(LoadError::Graph {
            sources,
            diagnostics,
            parsed,
        }) => {
            let reached = if parsed {
                Reached::Check
            } else {
                Reached::Parse
            };
            (sources, diagnostics, reached)
        }
        Err(LoadError::Usage(u)) => panic!("no flags were given, yet: {u}"),
    };
    let text = render(&sources, &diags.sorted(), false);
    assert!(
        !text.contains('\u{1b}'),
        "a rendered diagnostic holds a raw ESC"
    );
    reached
}

/// The fuzzed root file over the seed corpus.
struct Overlay<'a> {
    top: HashMap<PathBuf, Vec<u8>>,
    under: &'a Corpus,
}

impl FileLoader for Overlay<'_> {
    fn load(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        match self.top.get(path) {
            Some(b) => Ok(b.clone()),
            None => self.under.load(path),
        }
    }
}

/// Writes `bytes` at the start of `file`.
fn write_at(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, 0)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = file;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(bytes)
    }
}

/// Runs the fuzzer; progress lines go to stderr every `report_every`
/// executions (0: none).
pub fn run(options: &Options, report_every: u64) -> Report {
    let mut seed_paths = Vec::new();
    for dir in ["graphs", "examples", "tests/fixtures"] {
        world_files(&options.root.join(dir), &mut seed_paths);
    }
    let mut corpus = HashMap::new();
    let mut seeds = Vec::new();
    let mut names = Vec::new();
    for p in &seed_paths {
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        let rel = p.strip_prefix(&options.root).unwrap_or(p).to_path_buf();
        corpus.insert(rel.clone(), bytes.clone());
        // The fuzzed file sits next to its seed, so relative includes and
        // data paths mean what they meant.
        names.push(rel.with_file_name("fuzz-input.world"));
        seeds.push(bytes);
    }
    assert!(
        !seeds.is_empty(),
        "no seeds under {}",
        options.root.display()
    );
    let corpus = Corpus(corpus);
    let dict = dictionary();
    let registry = wgraph_nodes::registry();
    let mut rng = Rng(options.seed);
    let _ = std::fs::create_dir_all(&options.crash_dir);

    // The watchdog: the current input and when it started (ms since the
    // run began; u64::MAX when idle).
    let current: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let started_ms = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let watchdog = {
        let (current, started_ms, done) = (
            Arc::clone(&current),
            Arc::clone(&started_ms),
            Arc::clone(&done),
        );
        let bound = options.time_bound;
        let dir = options.crash_dir.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                let s = started_ms.load(Ordering::SeqCst);
                if s == u64::MAX {
                    continue;
                }
                let now = t0.elapsed().as_millis() as u64;
                if now.saturating_sub(s) > bound.as_millis() as u64 {
                    let path = dir.join("slow-input.world");
                    let input = current.lock().map(|c| c.clone()).unwrap_or_default();
                    let _ = std::fs::write(&path, input);
                    eprintln!(
                        "fuzz: an input took longer than {bound:?}; saved to {}",
                        path.display()
                    );
                    std::process::exit(2);
                }
            }
        })
    };

    // Panics of this thread are caught and reported here, not printed by
    // the default hook; other threads' panics (other tests running in the
    // same process) go to the hook that was there.
    let last_panic: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let previous_hook: Arc<PanicHook> = Arc::new(std::panic::take_hook());
    {
        let last_panic = Arc::clone(&last_panic);
        let previous_hook = Arc::clone(&previous_hook);
        let fuzzing = std::thread::current().id();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() != fuzzing {
                return previous_hook(info);
            }
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if let Ok(mut p) = last_panic.lock() {
                *p = format!("{payload}{location}");
            }
        }));
    }

    let last_input = std::fs::File::create(options.crash_dir.join("last-input.world")).ok();
    let mut pool: Vec<Vec<u8>> = seeds.clone();
    let mut pool_names: Vec<PathBuf> = names.clone();
    let mut crashes = Vec::new();
    let mut slowest = Duration::ZERO;
    let (mut parsed, mut built) = (0, 0);
    let start = Instant::now();
    for i in 0..options.runs {
        // A third of the time a seed, else an input kept from earlier.
        let pick = if rng.chance(33) {
            rng.below(seeds.len())
        } else {
            rng.below(pool.len())
        };
        let mut input = pool[pick].clone();
        let name = pool_names[pick].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut input, &mut rng, &seeds, &dict);
        }
        if let Ok(mut c) = current.lock() {
            c.clone_from(&input);
        }
        // An abort (an allocation failure) cannot be caught: the input that
        // was running is left in `last-input.world`.
        if let Some(f) = &last_input {
            let _ = f.set_len(input.len() as u64);
            let _ = write_at(f, &input);
        }
        started_ms.store(t0.elapsed().as_millis() as u64, Ordering::SeqCst);
        let began = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_one(&name, &input, &corpus, &registry)
        }));
        slowest = slowest.max(began.elapsed());
        started_ms.store(u64::MAX, Ordering::SeqCst);
        match &outcome {
            Ok(Reached::Check) => parsed += 1,
            Ok(Reached::Built) => {
                parsed += 1;
                built += 1;
            }
            _ => {}
        }
        if outcome.is_err() {
            let message = last_panic.lock().map(|p| p.clone()).unwrap_or_default();
            let path = options
                .crash_dir
                .join(format!("crash-{}-{i}.world", options.seed));
            let _ = std::fs::write(&path, &input);
            eprintln!("fuzz: crash {}: {message}", path.display());
            crashes.push((path, message));
        } else if matches!(outcome, Ok(Reached::Check | Reached::Built)) && rng.chance(10) {
            // Keep some mutants that still parse as starting points (the
            // checker is where they go deeper); a full pool replaces one
            // at random, never a seed.
            if pool.len() < 4096 {
                pool.push(input);
                pool_names.push(name);
            } else {
                let at = seeds.len() + rng.below(pool.len() - seeds.len());
                pool[at] = input;
                pool_names[at] = name;
            }
        }
        if report_every > 0 && (i + 1) % report_every == 0 {
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "fuzz: {} executions in {secs:.1} s ({:.0}/s), {} crashes, slowest input {:?}",
                i + 1,
                (i + 1) as f64 / secs,
                crashes.len(),
                slowest
            );
        }
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    drop(last_input);
    let _ = std::fs::remove_file(options.crash_dir.join("last-input.world"));
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| previous_hook(info)));
    Report {
        executions: options.runs,
        elapsed,
        crashes,
        slowest,
        seeds: seeds.len(),
        parsed,
        built,
    }
}

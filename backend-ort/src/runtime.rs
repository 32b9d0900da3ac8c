//! Finding, checking and initialising the ONNX Runtime shared library.
//!
//! `wgraph-ort` links nothing at build time: the ONNX Runtime library
//! (`libonnxruntime.so` / `.dylib` / `onnxruntime.dll`) is found and loaded
//! when the first model is loaded. [`runtime`] does this once per process and
//! hands every caller the same answer: a [`RuntimeInfo`] (path, version and
//! [`RuntimeSource`]) or the same [`ModelError::Runtime`].
//!
//! The library is looked for in this order:
//!
//! 1. [`RuntimeSource::EnvVar`]: the file named by `ORT_DYLIB_PATH`. When set,
//!    it is the only candidate: a missing, unloadable or too old file is an
//!    error, never a silent fallback.
//! 2. [`RuntimeSource::PythonPackage`]: an `onnxruntime` (or `onnxruntime-gpu`)
//!    package importable by `python3`, whose `capi/` folder holds the library.
//!    A package older than 1.31 is skipped.
//! 3. [`RuntimeSource::Cache`]: a copy managed by wgraph in
//!    `$WGRAPH_CACHE_DIR`, `$XDG_CACHE_HOME/wgraph` or `$HOME/.cache/wgraph`,
//!    folder `onnxruntime-1.31.1`. When it is absent, wgraph prints one line to
//!    stderr and installs the `onnxruntime==1.31.1` wheel there with
//!    `python3 -m pip install --target` (CPU only; for CUDA/TensorRT install
//!    `onnxruntime-gpu` with pip or set `ORT_DYLIB_PATH`). The install goes to
//!    a private temporary folder that is renamed into place, so concurrent
//!    threads and processes never see half an install.
//!
//! Before `ort` is told about a file, the file is opened here and asked for
//! its version (`OrtGetApiBase()->GetVersionString()`) and for the C API
//! table `ort` will use (`GetApi(ORT_API_VERSION)`): a file that is not a
//! shared library, not ONNX Runtime, older than 1.31, or that has no such
//! table gives an error ("no usable ONNX Runtime"), not a panic inside `ort`.

use ort::environment::Environment;
use std::ffi::{CStr, OsStr};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use wgraph_engine::model::ModelError;

/// The ONNX Runtime version wgraph installs into its cache.
pub const MANAGED_VERSION: &str = "1.31.1";

/// The oldest ONNX Runtime (major, minor) this backend accepts: `ort`
/// 2.0.0-rc.15 uses the version 31 C API.
pub const MIN_VERSION: (u32, u32) = (1, 31);

/// Environment variable naming the library file to use.
pub const ENV_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// Environment variable overriding the cache folder.
pub const ENV_CACHE_DIR: &str = "WGRAPH_CACHE_DIR";

/// Where the ONNX Runtime library came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeSource {
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// An installed Python package (`onnxruntime` or `onnxruntime-gpu`).
    PythonPackage {
        /// The package folder, e.g. `.../site-packages/onnxruntime`.
        package_dir: PathBuf,
    },
    /// wgraph's own cache.
    Cache {
        /// True when this process installed it (first use on this machine).
        installed_now: bool,
    },
}

impl RuntimeSource {
    /// A short machine-readable name: `env`, `python`, or `cache`.
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeSource::EnvVar => "env",
            RuntimeSource::PythonPackage { .. } => "python",
            RuntimeSource::Cache { .. } => "cache",
        }
    }
}

impl fmt::Display for RuntimeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeSource::EnvVar => write!(f, "{ENV_DYLIB_PATH}"),
            RuntimeSource::PythonPackage { package_dir } => {
                write!(f, "Python package at {}", package_dir.display())
            }
            RuntimeSource::Cache { installed_now } => {
                f.write_str("wgraph cache")?;
                if *installed_now {
                    f.write_str(" (installed now)")?;
                }
                Ok(())
            }
        }
    }
}

/// The ONNX Runtime library this process uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The library file (absolute, symlinks resolved).
    pub path: PathBuf,
    /// The version the library reports, e.g. `1.31.1`.
    pub version: String,
    /// How it was found.
    pub source: RuntimeSource,
}

impl fmt::Display for RuntimeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ONNX Runtime {} at {} (from {})",
            self.version,
            self.path.display(),
            self.source
        )
    }
}

/// The initialised runtime: what was found, the `ort` environment every
/// session is created in, and our own handle on the library (kept open for
/// the life of the process).
pub(crate) struct Runtime {
    pub(crate) info: RuntimeInfo,
    pub(crate) env: Environment,
    _lib: libloading::Library,
}

static RUNTIME: OnceLock<Result<Runtime, ModelError>> = OnceLock::new();

/// Finds, checks and initialises ONNX Runtime, once per process.
///
/// Every call returns the result of the first one (errors included). The
/// first call may take a while: it may install ONNX Runtime into the cache
/// (see the [module docs](self)).
pub fn runtime() -> Result<&'static RuntimeInfo, ModelError> {
    ensure().map(|rt| &rt.info)
}

/// The runtime, initialising it if needed.
pub(crate) fn ensure() -> Result<&'static Runtime, ModelError> {
    match RUNTIME.get_or_init(init) {
        Ok(rt) => Ok(rt),
        Err(e) => Err(e.clone()),
    }
}

fn init() -> Result<Runtime, ModelError> {
    let found = discover()?;
    let path_str = found.path.display().to_string();
    let builder = ort::init_from(&found.path).map_err(|e| {
        ModelError::Runtime(format!(
            "cannot initialise ONNX Runtime from {path_str}: {e} (set {ENV_DYLIB_PATH} to a working libonnxruntime {}.{} or newer)",
            MIN_VERSION.0, MIN_VERSION.1
        ))
    })?;
    let env = builder
        .with_name("wgraph")
        .with_telemetry(false)
        .build()
        .map_err(|e| {
            ModelError::Runtime(format!(
                "cannot create an ONNX Runtime environment with {path_str}: {e}"
            ))
        })?;
    Ok(Runtime {
        info: RuntimeInfo {
            path: found.path,
            version: found.version,
            source: found.source,
        },
        env,
        _lib: found.lib,
    })
}

/// A library that was found and passed [`probe`].
struct Found {
    path: PathBuf,
    version: String,
    source: RuntimeSource,
    lib: libloading::Library,
}

fn discover() -> Result<Found, ModelError> {
    // 1. ORT_DYLIB_PATH: the user's explicit choice, never second-guessed.
    if let Some(value) = std::env::var_os(ENV_DYLIB_PATH).filter(|v| !v.is_empty()) {
        let given = PathBuf::from(&value);
        let path = std::fs::canonicalize(&given).map_err(|e| {
            ModelError::Runtime(format!(
                "{ENV_DYLIB_PATH} is set to {}, which cannot be opened: {e}; point it at libonnxruntime ({}.{} or newer) or unset it to let wgraph find one",
                given.display(),
                MIN_VERSION.0,
                MIN_VERSION.1
            ))
        })?;
        let probed = probe(&path).map_err(|e| {
            ModelError::Runtime(format!(
                "{ENV_DYLIB_PATH} is set to {}: {e}",
                given.display()
            ))
        })?;
        check_version(&probed.version, &path).map_err(ModelError::Runtime)?;
        return Ok(Found {
            path,
            version: probed.version,
            source: RuntimeSource::EnvVar,
            lib: probed.lib,
        });
    }

    // 2. An installed Python package; an unusable one is skipped.
    let mut skipped = Vec::new();
    if let Some(package_dir) = python_package_dir() {
        match library_in(&package_dir.join("capi")) {
            Some(lib_path) => match accept(&lib_path) {
                Ok((path, probed)) => {
                    return Ok(Found {
                        path,
                        version: probed.version,
                        source: RuntimeSource::PythonPackage { package_dir },
                        lib: probed.lib,
                    });
                }
                Err(e) => skipped.push(e),
            },
            None => skipped.push(format!(
                "the Python package at {} has no ONNX Runtime library in capi/",
                package_dir.display()
            )),
        }
    }

    // 3. wgraph's cache, installed on first use.
    let base = cache_base().ok_or_else(|| {
        ModelError::Runtime(format!(
            "ONNX Runtime not found and there is no cache folder to install it into (set {ENV_CACHE_DIR} or HOME), or set {ENV_DYLIB_PATH} to libonnxruntime ({}.{} or newer)",
            MIN_VERSION.0, MIN_VERSION.1
        ))
    })?;
    let (lib_path, installed_now) = cached_or_install(&base).map_err(|e| {
        let mut msg = e;
        for s in &skipped {
            msg.push_str(&format!(" (also skipped: {s})"));
        }
        ModelError::Runtime(msg)
    })?;
    let (path, probed) = accept(&lib_path).map_err(|e| {
        ModelError::Runtime(format!(
            "the cached ONNX Runtime is unusable: {e}; delete {} and try again, or set {ENV_DYLIB_PATH}",
            base.join(cache_subdir()).display()
        ))
    })?;
    Ok(Found {
        path,
        version: probed.version,
        source: RuntimeSource::Cache { installed_now },
        lib: probed.lib,
    })
}

/// Canonicalises, probes and version-checks one candidate.
fn accept(path: &Path) -> Result<(PathBuf, Probed), String> {
    let path = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let probed = probe(&path)?;
    check_version(&probed.version, &path)?;
    Ok((path, probed))
}

/// An opened library and the version it reports.
struct Probed {
    lib: libloading::Library,
    version: String,
}

/// Opens `path` as a shared library and asks it for its ONNX Runtime version.
fn probe(path: &Path) -> Result<Probed, String> {
    if !path.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    // SAFETY: loading a library runs its initialisers; the caller chose this
    // file as ONNX Runtime. Failure to load is an ordinary error.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("{} is not a loadable shared library ({e})", path.display()))?;
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
    let get_base = unsafe { lib.get::<GetApiBase>(b"OrtGetApiBase") }.map_err(|_| {
        format!(
            "{} is a shared library but not ONNX Runtime (it has no OrtGetApiBase)",
            path.display()
        )
    })?;
    // SAFETY: documented as always returning a static table (checked for null).
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(format!(
            "{}: OrtGetApiBase returned nothing; this is not a working ONNX Runtime",
            path.display()
        ));
    }
    // SAFETY: `base` is non-null and points at the library's static OrtApiBase.
    let version_ptr = unsafe { ((*base).GetVersionString)() };
    if version_ptr.is_null() {
        return Err(format!(
            "{}: ONNX Runtime reports no version string",
            path.display()
        ));
    }
    // SAFETY: a static NUL-terminated string owned by the library.
    let version = unsafe { CStr::from_ptr(version_ptr) }
        .to_string_lossy()
        .trim()
        .to_string();
    // `ort` asks for this table and panics when it is null (a stub, a
    // broken build, a library whose API is older than it says).
    // SAFETY: `base` is non-null; `GetApi` takes any version and returns
    // null for one it does not support.
    let api = unsafe { ((*base).GetApi)(ort::sys::ORT_API_VERSION) };
    if api.is_null() {
        return Err(format!(
            "no usable ONNX Runtime: {} reports version {version} but has no C API version {} (GetApi returned null)",
            path.display(),
            ort::sys::ORT_API_VERSION
        ));
    }
    Ok(Probed { lib, version })
}

/// Parses `major.minor[.patch...]`.
pub(crate) fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().split('.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor_part = parts.next()?;
    let digits: String = minor_part
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let minor = digits.parse().ok()?;
    Some((major, minor))
}

/// Refuses versions older than [`MIN_VERSION`] (and unreadable ones).
pub(crate) fn check_version(version: &str, path: &Path) -> Result<(), String> {
    match parse_version(version) {
        Some(v) if v >= MIN_VERSION => Ok(()),
        Some(_) => Err(format!(
            "ONNX Runtime {version} at {} is too old; wgraph needs {}.{} or newer (set {ENV_DYLIB_PATH})",
            path.display(),
            MIN_VERSION.0,
            MIN_VERSION.1
        )),
        None => Err(format!(
            "ONNX Runtime at {} reports an unreadable version {version:?}; wgraph needs {}.{} or newer (set {ENV_DYLIB_PATH})",
            path.display(),
            MIN_VERSION.0,
            MIN_VERSION.1
        )),
    }
}

/// Python interpreters tried, in order.
const PYTHONS: &[&str] = &["python3", "python"];

/// Prints the folder of the `onnxruntime` package without importing it (fast,
/// and works when its own dependencies are missing).
const FIND_PACKAGE: &str = "import importlib.util as u\ns = u.find_spec('onnxruntime')\nl = list(s.submodule_search_locations or []) if s else []\nprint(l[0] if l else '')";

/// The folder of an installed `onnxruntime` Python package, if any.
fn python_package_dir() -> Option<PathBuf> {
    for python in PYTHONS {
        let Ok(out) = Command::new(python).args(["-c", FIND_PACKAGE]).output() else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let dir = text.trim();
        if dir.is_empty() {
            // This interpreter works but has no package: do not ask another
            // one, `python` is usually the same installation.
            return None;
        }
        let dir = PathBuf::from(dir);
        return dir.is_dir().then_some(dir);
    }
    None
}

/// The ONNX Runtime library in a folder (an `onnxruntime/capi` folder):
/// the real, versioned file (`libonnxruntime.so.1.31.1`,
/// `libonnxruntime.1.31.1.dylib`, `onnxruntime.dll`), not a symlink to it
/// and not a provider plug-in (`libonnxruntime_providers_cuda.so`).
pub(crate) fn library_in(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut candidates: Vec<(bool, usize, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            if !is_runtime_library_name(name) || !entry.path().is_file() {
                return None;
            }
            let is_real = entry.file_type().is_ok_and(|t| !t.is_symlink());
            Some((is_real, name.len(), entry.path()))
        })
        .collect();
    // Real files first, then the longest (most versioned) name.
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    candidates.into_iter().next().map(|(_, _, path)| path)
}

fn is_runtime_library_name(name: &str) -> bool {
    if let Some(rest) = name.strip_prefix("libonnxruntime.so") {
        // libonnxruntime.so, libonnxruntime.so.1, libonnxruntime.so.1.31.1
        return rest.is_empty() || rest.starts_with('.');
    }
    if let Some(rest) = name.strip_prefix("libonnxruntime.") {
        // libonnxruntime.dylib, libonnxruntime.1.31.1.dylib
        return rest.ends_with("dylib");
    }
    name.eq_ignore_ascii_case("onnxruntime.dll")
}

/// The folder wgraph's cache lives in.
pub fn cache_base() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(dir) = nonempty(ENV_CACHE_DIR) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = nonempty("XDG_CACHE_HOME").map(PathBuf::from) {
        if dir.is_absolute() {
            return Some(dir.join("wgraph"));
        }
    }
    if let Some(home) = nonempty("HOME") {
        return Some(PathBuf::from(home).join(".cache").join("wgraph"));
    }
    nonempty("LOCALAPPDATA").map(|d| PathBuf::from(d).join("wgraph"))
}

/// `onnxruntime-1.31.1`.
pub fn cache_subdir() -> String {
    format!("onnxruntime-{MANAGED_VERSION}")
}

/// The library inside an install made with `pip install --target <dir>`.
fn library_in_install(dir: &Path) -> Option<PathBuf> {
    library_in(&dir.join("onnxruntime").join("capi"))
}

/// The cached library, installing it first if absent. Returns the library
/// path and whether this call installed it.
fn cached_or_install(base: &Path) -> Result<(PathBuf, bool), String> {
    let final_dir = base.join(cache_subdir());
    if let Some(lib) = library_in_install(&final_dir) {
        return Ok((lib, false));
    }
    if final_dir.exists() {
        return Err(format!(
            "{} exists but holds no ONNX Runtime library; delete it and try again, or set {ENV_DYLIB_PATH}",
            final_dir.display()
        ));
    }
    eprintln!(
        "wgraph: ONNX Runtime not found; installing onnxruntime=={MANAGED_VERSION} with pip into {} (one time)",
        final_dir.display()
    );
    let lib = install_atomically(base, &final_dir, pip_install)?;
    Ok((lib, true))
}

static INSTALL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs `install` into a temporary folder unique to this process and call,
/// then renames it to `final_dir`. When another thread or process got there
/// first, its complete install is used and ours is deleted. Returns the
/// library inside `final_dir`.
pub(crate) fn install_atomically(
    base: &Path,
    final_dir: &Path,
    install: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(base)
        .map_err(|e| format!("cannot create the cache folder {}: {e}", base.display()))?;
    let final_name = final_dir
        .file_name()
        .map(OsStr::to_string_lossy)
        .unwrap_or_default();
    let tmp = base.join(format!(
        ".{final_name}.tmp-{}-{}",
        std::process::id(),
        INSTALL_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let cleanup = |tmp: &Path| {
        let _ = std::fs::remove_dir_all(tmp);
    };
    if let Err(e) = install(&tmp) {
        cleanup(&tmp);
        return Err(e);
    }
    if library_in_install(&tmp).is_none() {
        cleanup(&tmp);
        return Err(format!(
            "the onnxruntime=={MANAGED_VERSION} package was installed but holds no ONNX Runtime library for this platform; set {ENV_DYLIB_PATH}"
        ));
    }
    if let Err(e) = std::fs::rename(&tmp, final_dir) {
        // Someone else finished first (the rename onto a non-empty folder
        // fails): use theirs.
        cleanup(&tmp);
        if library_in_install(final_dir).is_none() {
            return Err(format!(
                "cannot move the ONNX Runtime install into {}: {e}",
                final_dir.display()
            ));
        }
    }
    library_in_install(final_dir).ok_or_else(|| {
        format!(
            "{} holds no ONNX Runtime library after installing",
            final_dir.display()
        )
    })
}

/// `python3 -m pip install --no-deps --target <dir> onnxruntime==1.31.1`.
fn pip_install(target: &Path) -> Result<(), String> {
    let how_to_fix = format!(
        "set {ENV_DYLIB_PATH} to libonnxruntime ({}.{} or newer), or install python3 with pip (then wgraph installs onnxruntime=={MANAGED_VERSION} itself), or run `pip install onnxruntime`",
        MIN_VERSION.0, MIN_VERSION.1
    );
    let requirement = format!("onnxruntime=={MANAGED_VERSION}");
    let mut last_problem = String::from("no Python interpreter (python3 or python) was found");
    for python in PYTHONS {
        let result = Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-input",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(target)
            .arg(&requirement)
            .output();
        let out = match result {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                last_problem = format!("cannot run {python}: {e}");
                continue;
            }
        };
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
        let problem = if stderr.contains("No module named pip") {
            format!("{python} has no pip")
        } else {
            format!(
                "`{python} -m pip install {requirement}` failed ({})",
                tail.trim()
            )
        };
        return Err(format!(
            "ONNX Runtime not found and could not be installed: {problem}. To fix: {how_to_fix}"
        ));
    }
    Err(format!(
        "ONNX Runtime not found and could not be installed: {last_problem}. To fix: {how_to_fix}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(parse_version("1.31.1"), Some((1, 31)));
        assert_eq!(parse_version("1.32.0-dev"), Some((1, 32)));
        assert_eq!(parse_version("2.0"), Some((2, 0)));
        assert_eq!(parse_version("garbage"), None);
        assert!(check_version("1.31.1", Path::new("/x")).is_ok());
        assert!(check_version("1.40.0", Path::new("/x")).is_ok());
        let err = check_version("1.20.0", Path::new("/lib/libonnxruntime.so")).unwrap_err();
        assert_eq!(
            err,
            "ONNX Runtime 1.20.0 at /lib/libonnxruntime.so is too old; wgraph needs 1.31 or newer (set ORT_DYLIB_PATH)"
        );
        assert!(check_version("x.y", Path::new("/x")).is_err());
    }

    #[test]
    fn picks_the_versioned_real_library() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("libonnxruntime.so.1.31.1"), b"x").unwrap();
        std::fs::write(d.join("libonnxruntime_providers_shared.so"), b"x").unwrap();
        std::fs::write(d.join("libonnxruntime_providers_cuda.so"), b"x").unwrap();
        std::fs::write(d.join("onnxruntime_pybind11_state.so"), b"x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            d.join("libonnxruntime.so.1.31.1"),
            d.join("libonnxruntime.so"),
        )
        .unwrap();
        assert_eq!(library_in(d), Some(d.join("libonnxruntime.so.1.31.1")));

        let mac = tempfile::tempdir().unwrap();
        std::fs::write(mac.path().join("libonnxruntime.1.31.1.dylib"), b"x").unwrap();
        assert_eq!(
            library_in(mac.path()),
            Some(mac.path().join("libonnxruntime.1.31.1.dylib"))
        );

        let empty = tempfile::tempdir().unwrap();
        assert_eq!(library_in(empty.path()), None);
        assert_eq!(library_in(&empty.path().join("absent")), None);
    }

    fn fake_install(dir: &Path) -> Result<(), String> {
        let capi = dir.join("onnxruntime").join("capi");
        std::fs::create_dir_all(&capi).map_err(|e| e.to_string())?;
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"fake").map_err(|e| e.to_string())
    }

    #[test]
    fn concurrent_installs_agree_and_leave_no_temporaries() {
        let base = tempfile::tempdir().unwrap();
        let final_dir = base.path().join(cache_subdir());
        let results: Vec<Result<PathBuf, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| s.spawn(|| install_atomically(base.path(), &final_dir, fake_install)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let expected = final_dir
            .join("onnxruntime")
            .join("capi")
            .join("libonnxruntime.so.1.31.1");
        for r in results {
            assert_eq!(r.unwrap(), expected);
        }
        let leftovers: Vec<_> = std::fs::read_dir(base.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(cache_subdir())]);
    }

    #[test]
    fn failed_or_empty_installs_clean_up() {
        let base = tempfile::tempdir().unwrap();
        let final_dir = base.path().join(cache_subdir());
        let err = install_atomically(base.path(), &final_dir, |_| Err("pip exploded".into()))
            .unwrap_err();
        assert_eq!(err, "pip exploded");
        let err = install_atomically(base.path(), &final_dir, |_| Ok(())).unwrap_err();
        assert!(err.contains("holds no ONNX Runtime library"), "{err}");
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }

    #[test]
    fn probing_a_text_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("libonnxruntime.so");
        std::fs::write(&f, "not a library").unwrap();
        let err = probe(&f).err().unwrap();
        assert!(err.contains("not a loadable shared library"), "{err}");
    }
}

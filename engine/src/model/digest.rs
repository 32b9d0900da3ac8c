//! A model's identity: every file it reads (the model file and the
//! external-data files its tensors name), each one's [`FileStamp`], and
//! their SHA-256 together ([`ModelDigest`], [`model_digest`]); digests are
//! remembered per process and, optionally, in a file across processes
//! ([`remember_digests_in`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a file looked like: its path, size, modification and change times,
/// device and inode. A write in place, a `cp` over it, a rename over it or
/// a `touch` changes it; reading it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    pub path: PathBuf,
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
    /// Status change time (ns since the epoch; Unix only, else 0): a
    /// write that restores the old mtime still changes it.
    pub changed: i128,
    pub device: u64,
    pub inode: u64,
}

/// How recent a change must be for a stamp not to be trusted (see
/// [`model_digest`]).
pub(super) const RACY: std::time::Duration = std::time::Duration::from_millis(100);

impl FileStamp {
    /// The file changed within [`RACY`] of `now`.
    fn is_racy(&self, now: std::time::SystemTime) -> bool {
        let Some(limit) = now.checked_sub(RACY) else {
            return true;
        };
        let since_epoch = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i128)
        };
        self.modified.is_none_or(|m| m > limit)
            || (self.changed != 0 && self.changed > since_epoch(limit))
    }
}

/// The stamp of `path` (following links), its errors naming the file.
pub fn file_stamp(path: &Path) -> std::io::Result<FileStamp> {
    let m = std::fs::metadata(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    #[cfg(unix)]
    let (changed, device, inode) = {
        use std::os::unix::fs::MetadataExt;
        (
            i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            m.dev(),
            m.ino(),
        )
    };
    #[cfg(not(unix))]
    let (changed, device, inode) = (0, 0, 0);
    Ok(FileStamp {
        path: path.to_path_buf(),
        len: m.len(),
        modified: m.modified().ok(),
        changed,
        device,
        inode,
    })
}

/// A model's identity: the digest of every file it reads, and whether
/// this call had to hash them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDigest {
    /// SHA-256 over the model file and its external-data files ([`model_files`]).
    pub digest: [u8; 32],
    /// The files, the model file first.
    pub files: Vec<PathBuf>,
    /// Bytes hashed and how long it took; `None` when every file's stamp
    /// was unchanged since the last digest and it was remembered.
    pub hashed: Option<(u64, std::time::Duration)>,
}

/// What [`model_digest`] remembers of one model file.
pub(super) struct Remembered {
    /// The model file's stamp when its external data were listed.
    model: FileStamp,
    files: Vec<PathBuf>,
    /// `files` were read from the model (not guessed from its neighbours).
    read: bool,
    /// Every file's stamp when `digest` was computed (empty: not yet).
    stamps: Vec<FileStamp>,
    digest: [u8; 32],
}

/// Digests remembered, per model file (process-wide, bounded).
static REMEMBERED: std::sync::LazyLock<std::sync::Mutex<HashMap<PathBuf, Remembered>>> =
    std::sync::LazyLock::new(Default::default);
const REMEMBERED_MAX: usize = 256;

pub(super) fn remembered() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Remembered>> {
    REMEMBERED.lock().unwrap_or_else(|p| p.into_inner())
}

/// A model's identity ([`ModelDigest`]): the files it reads are the model
/// file and every external-data file its tensors name ([`model_files`]);
/// their contents are hashed only when one of their [`FileStamp`]s (path,
/// size, mtime, ctime, inode) changed since the last call for that model,
/// so a rebuild for a parameter edit reads no model file.
pub fn model_digest(path: &Path) -> std::io::Result<ModelDigest> {
    use sha2::Digest;
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let (files, read) = files_of(path);
    let now = std::time::SystemTime::now();
    let stamps = files
        .iter()
        .map(|f| file_stamp(f))
        .collect::<std::io::Result<Vec<_>>>()?;
    if let Some(r) = remembered().get(&key)
        && r.files == files
        && r.stamps == stamps
    {
        return Ok(ModelDigest {
            digest: r.digest,
            files,
            hashed: None,
        });
    }
    if let Some(digest) = store::lookup(&key, &stamps) {
        remember(key, read, stamps, digest);
        return Ok(ModelDigest {
            digest,
            files,
            hashed: None,
        });
    }
    let started = std::time::Instant::now();
    let mut hasher = sha2::Sha256::new();
    let mut bytes = 0u64;
    let folder = path.parent().unwrap_or(Path::new(""));
    for (i, file) in files.iter().enumerate() {
        if i > 0 {
            // Separate the files, and name each one (renaming one changes the model).
            hasher.update(b"\0");
            let name = file.strip_prefix(folder).unwrap_or(file);
            hasher.update(name.as_os_str().as_encoded_bytes());
            hasher.update(b"\0");
        }
        // A device or FIFO would be read forever.
        let limit = if i == 0 {
            crate::input::MODEL
        } else {
            crate::input::MODEL_DATA
        };
        crate::input::check(file, limit)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
        let mut f = std::fs::File::open(file)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
        bytes += std::io::copy(&mut f, &mut hasher)?;
    }
    let digest: [u8; 32] = hasher.finalize().into();
    let took = started.elapsed();
    // Remembered only when nothing changed while it was read, and no file
    // changed just before it was looked at: file times are coarse (a few
    // ms), so a second write within that time could keep the stamp.
    let after: Option<Vec<FileStamp>> = files.iter().map(|f| file_stamp(f).ok()).collect();
    if after.as_ref() == Some(&stamps) && !stamps.iter().any(|s| s.is_racy(now)) {
        store::save(&key, &stamps, &digest);
        remember(key, read, stamps, digest);
    }
    Ok(ModelDigest {
        digest,
        files,
        hashed: Some((bytes, took)),
    })
}

fn remember(key: PathBuf, read: bool, stamps: Vec<FileStamp>, digest: [u8; 32]) {
    let mut memo = remembered();
    if memo.len() >= REMEMBERED_MAX && !memo.contains_key(&key) {
        memo.clear();
    }
    memo.insert(
        key,
        Remembered {
            model: stamps[0].clone(),
            files: stamps.iter().map(|s| s.path.clone()).collect(),
            read,
            stamps,
            digest,
        },
    );
}

/// Keeps model digests across runs: `wgraph` names a file in its cache
/// ([`remember_digests_in`]), and a model whose files all have the stamps
/// they had when it was last hashed is not hashed again at start.
pub fn remember_digests_in(file: PathBuf) {
    let _ = store::FILE.set(file);
}

pub(super) mod store {
    //! The file [`super::remember_digests_in`] names: JSON, one entry per
    //! model file (at most [`MAX`]), each its files' stamps and digest.
    //! A store that cannot be read or written is no store.
    use super::FileStamp;
    use serde_json::{Value, json};
    use std::path::{Path, PathBuf};

    pub(in crate::model) static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    const MAX: usize = 256;

    fn stamp_json(s: &FileStamp) -> Value {
        let ns = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                .to_string()
        };
        json!({
            "path": s.path.display().to_string(),
            "len": s.len,
            "modified": s.modified.map(ns),
            "changed": s.changed.to_string(),
            "device": s.device,
            "inode": s.inode,
        })
    }

    fn hex(d: &[u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn read(file: &Path) -> serde_json::Map<String, Value> {
        crate::input::read_to_string(file, crate::input::DATA)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("models").and_then(Value::as_object).cloned())
            .unwrap_or_default()
    }

    pub(super) fn lookup(key: &Path, stamps: &[FileStamp]) -> Option<[u8; 32]> {
        let file = FILE.get()?;
        let models = read(file);
        let entry = models.get(&key.display().to_string())?;
        let want: Vec<Value> = stamps.iter().map(stamp_json).collect();
        if entry.get("stamps")?.as_array()? != &want {
            return None;
        }
        let text = entry.get("digest")?.as_str()?;
        let mut digest = [0u8; 32];
        if text.len() != 64 {
            return None;
        }
        for (i, b) in digest.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(digest)
    }

    pub(super) fn save(key: &Path, stamps: &[FileStamp], digest: &[u8; 32]) {
        let Some(file) = FILE.get() else { return };
        let mut models = read(file);
        let name = key.display().to_string();
        if models.len() >= MAX && !models.contains_key(&name) {
            models.clear();
        }
        models.insert(
            name,
            json!({
                "stamps": stamps.iter().map(stamp_json).collect::<Vec<_>>(),
                "digest": hex(digest),
            }),
        );
        let text = json!({ "version": 1, "models": models }).to_string();
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::output::write_file(file, text.as_bytes());
    }
}

/// SHA-256 of a model: of the model file and its external-data files
/// ([`model_files`]), so a retrained `.onnx.data` (or `weights.bin`) alone
/// is a new model. Remembered while the files' stamps are unchanged (see
/// [`model_digest`]).
pub fn file_digest(path: &Path) -> std::io::Result<[u8; 32]> {
    model_digest(path).map(|d| d.digest)
}

/// `path` and the external-data files it reads: for an ONNX model, every
/// file its tensors name (`location`, read from the model:
/// [`crate::onnx_data`]), whatever the exporter called it. A `.onnx` file
/// that cannot be read as ONNX gets the files next to it that exporters
/// write (`NAME.onnx.data`, PyTorch's default; `NAME.onnx_data`;
/// `NAME.data`), those that exist. The list is remembered while the model
/// file's stamp is unchanged.
pub fn model_files(path: &Path) -> Vec<PathBuf> {
    files_of(path).0
}

/// [`model_files`], and whether they were read from the model.
fn files_of(path: &Path) -> (Vec<PathBuf>, bool) {
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let Ok(stamp) = file_stamp(path) else {
        return (vec![path.to_path_buf()], false);
    };
    if let Some(r) = remembered().get(&key)
        && r.read
        && r.model == stamp
    {
        return (r.files.clone(), true);
    }
    let (files, read) = list_model_files(path);
    if !read {
        // Guessed from the files next to it: looked at again every time.
        return (files, false);
    }
    let mut memo = remembered();
    if memo.len() >= REMEMBERED_MAX && !memo.contains_key(&key) {
        memo.clear();
    }
    memo.insert(
        key,
        Remembered {
            model: stamp,
            files: files.clone(),
            read,
            stamps: Vec::new(),
            digest: [0; 32],
        },
    );
    (files, read)
}

/// The files of [`model_files`], and whether they were read from the model.
fn list_model_files(path: &Path) -> (Vec<PathBuf>, bool) {
    let mut files = vec![path.to_path_buf()];
    let folder = path.parent().unwrap_or(Path::new(""));
    match crate::onnx_data::external_locations(path) {
        Ok(locations) => {
            for l in locations {
                let p = folder.join(l);
                if !files.contains(&p) {
                    files.push(p);
                }
            }
            return (files, true);
        }
        Err(_) if path.extension().is_some_and(|e| e == "onnx") => {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            for companion in [
                format!("{name}.data"),
                format!("{name}_data"),
                format!("{stem}.data"),
            ] {
                let p = path.with_file_name(companion);
                if p.is_file() {
                    files.push(p);
                }
            }
        }
        Err(_) => {}
    }
    (files, false)
}

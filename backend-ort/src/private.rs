//! A private copy of a model's external data, for ONNX Runtime to map.
//!
//! ONNX Runtime memory-maps the external-data files of a model
//! (`model.onnx.data`, `weights.bin`) and keeps the tensors it does not
//! repack mapped for the session's life. A write to such a file in place
//! (`cp new.data model.onnx.data`, Python's `shutil.copyfile`) truncates it
//! under the mapping, and the next read of those pages kills the process
//! with SIGBUS — no message, no chance to keep the old graph running.
//!
//! So a model with external data is loaded from a private copy: the
//! `.onnx` file and every file its tensors name are copied into a fresh
//! folder (next to the model when that folder is writable, so the copy
//! stays on one file system and copy-on-write file systems clone instead
//! of copying; else the temporary folder), ONNX Runtime maps the copies,
//! and the folder is removed as soon as the session is built. The mapped
//! copies live on, unlinked, until the session drops them: nothing a user
//! does to the model's files can reach them.
//!
//! What it costs (measured, benches/RESULTS.md "Large models"): the copy's
//! time (about 1.5 s per GB from page cache on this machine) and, while a
//! session maps tensors, their size on disk; memory is what mapping the
//! original costs (RSS about 1.0× the weights). Reading the data into
//! memory and handing it to ONNX Runtime as in-memory external
//! initializers was measured too: ONNX Runtime copies the buffer, so a
//! load peaks at 2× the weights (3× while a reload keeps the old session)
//! and takes twice as long.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wgraph_engine::model::ModelError;

/// A model's files copied into a folder of their own; the folder goes when
/// this is dropped (the session keeps what it mapped).
pub(crate) struct PrivateCopy {
    dir: PathBuf,
    /// The copy of the `.onnx` file.
    pub(crate) model: PathBuf,
    /// The original model's folder (named in messages instead of `dir`).
    original_dir: PathBuf,
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PrivateCopy {
    /// `message` (ONNX Runtime's) naming the original folder, not the copy's.
    pub(crate) fn unprivate(&self, message: &str) -> String {
        message.replace(
            &self.dir.display().to_string(),
            &self.original_dir.display().to_string(),
        )
    }
}

/// What a file looked like: a write in place changes it.
fn stamp(path: &Path) -> std::io::Result<(u64, Option<std::time::SystemTime>)> {
    let m = std::fs::metadata(path)?;
    Ok((m.len(), m.modified().ok()))
}

/// Copies `model` and its external-data files into a private folder; `None`
/// for a model without external data (ONNX Runtime reads it whole) or one
/// that is not an ONNX protobuf (ONNX Runtime says what is wrong with it).
pub(crate) fn copy(model: &Path) -> Result<Option<PrivateCopy>, ModelError> {
    let Ok(locations) = wgraph_engine::onnx_data::external_locations(model) else {
        return Ok(None);
    };
    if locations.is_empty() {
        return Ok(None);
    }
    let shown = model.display();
    for loc in &locations {
        let plain = Path::new(loc)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !plain || loc.is_empty() {
            return Err(ModelError::Load(format!(
                "model {shown}: external data location `{}` is not a file in the model's folder \
                 (re-export with a plain file name, e.g. `location=\"model.onnx.data\"`)",
                loc.escape_debug()
            )));
        }
    }
    let folder = match model.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = model.file_name().unwrap_or_default();
    let mut errors = Vec::new();
    for base in [folder.clone(), std::env::temp_dir()] {
        match copy_into(&base, &folder, model, name, &locations) {
            Ok(copy) => return Ok(Some(copy)),
            Err(Fatal(e)) => return Err(e),
            Err(Retry(e)) => errors.push(format!("in {}: {e}", base.display())),
        }
    }
    Err(ModelError::Load(format!(
        "model {shown}: cannot make the private copy of its external data that ONNX Runtime maps \
         (so that a write to the files cannot crash the world): {}",
        errors.join("; ")
    )))
}

enum CopyError {
    /// Another folder may work (this one is read-only or full).
    Retry(String),
    /// The model's own files are the problem.
    Fatal(ModelError),
}
use CopyError::{Fatal, Retry};

fn copy_into(
    base: &Path,
    folder: &Path,
    model: &Path,
    name: &std::ffi::OsStr,
    locations: &[String],
) -> Result<PrivateCopy, CopyError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    remove_stale(base);
    let dir = base.join(format!(
        ".wgraph-load-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).map_err(|e| Retry(e.to_string()))?;
    let copy = PrivateCopy {
        model: dir.join(name),
        dir,
        original_dir: folder.to_path_buf(),
    };
    let files = std::iter::once((model.to_path_buf(), copy.model.clone()))
        .chain(locations.iter().map(|l| (folder.join(l), copy.dir.join(l))));
    for (from, to) in files {
        let before = stamp(&from).map_err(|e| {
            Fatal(ModelError::Load(format!(
                "cannot read {} (external data of {}): {e}",
                from.display(),
                model.display()
            )))
        })?;
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Retry(e.to_string()))?;
        }
        std::fs::copy(&from, &to).map_err(|e| Retry(format!("{}: {e}", from.display())))?;
        if stamp(&from).ok() != Some(before) || stamp(&to).ok().map(|s| s.0) != Some(before.0) {
            return Err(Fatal(ModelError::Load(format!(
                "{} changed while it was being loaded; a live world loads it again once it is written",
                from.display()
            ))));
        }
    }
    Ok(copy)
}

/// Removes the copies a process that no longer runs left in `base` (killed
/// while it was loading a model). Linux only: elsewhere nothing is removed.
fn remove_stale(base: &Path) {
    let proc = Path::new("/proc/self");
    if !proc.exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(".wgraph-load-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_external_data_is_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        std::fs::write(&model, b"not a model").unwrap();
        assert!(copy(&model).unwrap().is_none());
    }
}

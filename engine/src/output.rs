//! Writing output files whole or not at all.
//!
//! Every file a sink or the CLI writes in one piece (a PNG frame, an
//! `.npy` dump, a JSON report, a snapshot) goes through [`write_file`]: the
//! bytes go to a temporary file in the same directory, which is renamed
//! over the target only when every byte was written. A full disk or a
//! file-size limit is an error naming the file, and never leaves a
//! truncated file under the target's name: the frames written before stay
//! valid, and the one that failed is absent rather than empty.
//!
//! A target that exists and is not a regular file (`/dev/stdout`, a FIFO,
//! `/dev/full`) is written directly: renaming over it would replace the
//! device. A symbolic link is followed, so the file it points at is
//! replaced, not the link.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary name next to `path`, unique to this process and call.
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Writes `bytes` to `path` whole, or returns the error and leaves `path`
/// as it was (see the [module docs](self)).
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    let path = target.as_path();
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        return f.write_all(bytes).and_then(|()| f.flush());
    }
    let tmp = temp_name(path);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.flush()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // A target in a missing directory: an error, nothing left behind.
        let missing = dir.path().join("no/such/dir/b.json");
        assert!(write_file(&missing, b"x").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
        // A link: the file it points at is replaced, the link stays.
        #[cfg(unix)]
        {
            let link = dir.path().join("link.json");
            std::os::unix::fs::symlink(&p, &link).unwrap();
            write_file(&link, b"three").unwrap();
            assert!(
                std::fs::symlink_metadata(&link)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            assert_eq!(std::fs::read(&p).unwrap(), b"three");
        }
        // A full device is written directly (never renamed over) and its
        // error comes back.
        #[cfg(target_os = "linux")]
        {
            let e = write_file(Path::new("/dev/full"), b"x").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::StorageFull);
            assert!(
                std::fs::metadata("/dev/full")
                    .unwrap()
                    .file_type()
                    .is_char_device()
            );
        }
    }
}

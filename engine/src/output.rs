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
//!
//! Files a *graph* names (its sinks' files, under the run's output
//! directory) are confined instead: [`check_relative`] refuses a path that
//! could leave the output directory (absolute, or with `..`) — the checker
//! calls it for every [`ParamType::OutPath`](crate::params::ParamType::OutPath)
//! parameter, so a graph file, a `--set` or a forged recording is refused
//! at the parameter — and [`write_confined`] / [`create_confined`] never
//! follow a symbolic link at the file's own name: the link is replaced by
//! the file. (Links in the directories above it, and the `--out` path the
//! user typed, are followed: the user made them.)

use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
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
/// as it was (see the [module docs](self)). Missing parent directories are
/// created first (`--json out/eval/a.json` on a fresh clone).
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_parent(path)?;
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

/// Creates the missing directories above `path` (none for a bare file
/// name), so the CLI's output files (reports, plots, strips, snapshots) can
/// name a directory that does not exist yet.
pub fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// Why a path a graph names cannot be an output path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutsideOutput {
    /// `/tmp/x.gif`, `C:\x.gif`, `\x.gif`.
    #[error("is absolute")]
    Absolute,
    /// `../x.gif`, `a/../../x`.
    #[error("goes up with `..`")]
    Parent,
}

/// Checks that `rel`, joined to the run's output directory, stays inside
/// it: no root, no drive prefix, no `..` component. (`""` and `.` name the
/// directory itself; `-` is a plain name here.)
pub fn check_relative(rel: &Path) -> Result<(), OutsideOutput> {
    for c in rel.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => return Err(OutsideOutput::Absolute),
            Component::ParentDir => return Err(OutsideOutput::Parent),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    // `\x` and `C:x` are not absolute on Unix, but are on Windows: refuse
    // them everywhere, so a graph means the same on every system.
    let text = rel.to_string_lossy();
    let drive = matches!(text.as_bytes(), [d, b':', ..] if d.is_ascii_alphabetic());
    if text.starts_with('\\') || drive {
        return Err(OutsideOutput::Absolute);
    }
    if text.split(['/', '\\']).any(|part| part == "..") {
        return Err(OutsideOutput::Parent);
    }
    Ok(())
}

/// A file name part (a sink's file prefix) that names no directory: no
/// `/`, no `\`, no NUL. Returns the offending character.
pub fn check_name_part(name: &str) -> Result<(), char> {
    match name.chars().find(|c| matches!(c, '/' | '\\' | '\0')) {
        Some(c) => Err(c),
        None => Ok(()),
    }
}

/// Like [`write_file`] (whole or not at all), for a file a graph names
/// under the output directory: a symbolic link at `path` is replaced by
/// the file, never followed, and an existing FIFO or device is replaced
/// rather than written to.
pub fn write_confined(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_name(path);
    let written = create_new(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.flush()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Creates (or truncates) a file a graph names under the output directory
/// for writing, never through a symbolic link: a link at `path` is removed
/// first and the file created in its place (a link that appears in between
/// is an error, not followed).
pub fn create_confined(path: &Path) -> io::Result<std::fs::File> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(path)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    no_follow(&mut options);
    options.open(path)
}

/// A new file (never an existing one, never through a link).
fn create_new(path: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    no_follow(&mut options);
    options.open(path)
}

#[cfg(unix)]
fn no_follow(options: &mut std::fs::OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(libc::O_NOFOLLOW);
}

#[cfg(not(unix))]
fn no_follow(_: &mut std::fs::OpenOptions) {}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn output_paths_stay_inside_the_output_directory() {
        for ok in ["a.gif", "sub/a.gif", "./a", "", ".", "-", "a..b", "..a/b"] {
            assert_eq!(check_relative(Path::new(ok)), Ok(()), "{ok}");
        }
        for abs in ["/tmp/a.gif", "//x", "\\\\srv\\x", "\\x", "C:\\x", "c:x"] {
            assert_eq!(
                check_relative(Path::new(abs)),
                Err(OutsideOutput::Absolute),
                "{abs}"
            );
        }
        for up in ["..", "../a", "a/../../b", "a/..", "..\\a", "a\\..\\b"] {
            assert_eq!(
                check_relative(Path::new(up)),
                Err(OutsideOutput::Parent),
                "{up}"
            );
        }
        assert_eq!(check_name_part("frame"), Ok(()));
        assert_eq!(check_name_part("..x"), Ok(()));
        assert_eq!(check_name_part("../x"), Err('/'));
        assert_eq!(check_name_part("a\\b"), Err('\\'));
        assert_eq!(check_name_part("a\0"), Err('\0'));
    }

    /// A link at a confined file's name is replaced, and what it pointed
    /// at is untouched.
    #[cfg(unix)]
    #[test]
    fn confined_writes_replace_a_link_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, b"precious").unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        for (i, write) in [
            &(|p: &Path| write_confined(p, b"frame")) as &dyn Fn(&Path) -> io::Result<()>,
            &|p: &Path| create_confined(p).and_then(|mut f| f.write_all(b"frame")),
        ]
        .into_iter()
        .enumerate()
        {
            let link = out.join(format!("f{i}.npy"));
            std::os::unix::fs::symlink(&outside, &link).unwrap();
            write(&link).unwrap();
            let meta = std::fs::symlink_metadata(&link).unwrap();
            assert!(meta.file_type().is_file(), "{i}: the link is replaced");
            assert_eq!(std::fs::read(&link).unwrap(), b"frame");
            assert_eq!(std::fs::read(&outside).unwrap(), b"precious", "{i}");
            // An existing file is replaced whole.
            write(&link).unwrap();
            assert_eq!(std::fs::read(&link).unwrap(), b"frame");
        }
        let names: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary file left");
    }

    #[test]
    fn whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // A target in a missing directory: the directories are made.
        let missing = dir.path().join("new/dirs/b.json");
        write_file(&missing, b"x").unwrap();
        assert_eq!(std::fs::read(&missing).unwrap(), b"x");
        std::fs::remove_dir_all(dir.path().join("new")).unwrap();
        // A parent that cannot be a directory (a file is in the way): an
        // error, nothing left behind.
        let blocked = dir.path().join("a.json/b.json");
        assert!(write_file(&blocked, b"x").is_err());
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

//! Reading the files a user names: regular files only, up to a size limit.
//!
//! Every input path wgraph reads — graph files and their includes, action
//! and event files, arrays, images, snapshots, recordings, models — goes
//! through [`read`] (or [`check`], for files another library opens). A
//! device (`/dev/zero`), a FIFO or a directory is refused before it is
//! opened, so nothing blocks on a reader that never ends; a file larger
//! than its [`Limit`] is refused before it is read, and the read itself
//! stops at the limit should the file grow meanwhile.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

/// The largest file of one kind wgraph reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Bytes.
    pub bytes: u64,
    /// What is limited, for messages: "graph files".
    pub what: &'static str,
}

/// Graph files and includes (each).
pub const GRAPH: Limit = Limit {
    bytes: 4 << 20,
    what: "graph files",
};

/// Text inputs read whole: action files, event scripts.
pub const TEXT: Limit = Limit {
    bytes: 16 << 20,
    what: "action and event files",
};

/// Data: arrays (`.npy`), images, snapshots (`--load-state`), recordings.
pub const DATA: Limit = Limit {
    bytes: 1 << 30,
    what: "data files (arrays, images, snapshots, recordings)",
};

/// ONNX model files (protobuf's own limit; weights beyond it live in
/// external data files, which ONNX Runtime reads itself).
pub const MODEL: Limit = Limit {
    bytes: 2 << 30,
    what: "model files",
};

/// A model's external-data file (`NAME.onnx.data`): the weights of a model
/// too big for one protobuf; hashed as a stream, never read whole.
pub const MODEL_DATA: Limit = Limit {
    bytes: 1 << 40,
    what: "model external-data files",
};

/// A size in bytes as people read it: `16 MiB`, `1.5 GiB`, `300 bytes`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} for {}", human_size(self.bytes), self.what)
    }
}

/// What a path is when it is not a regular file.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a file"
}

fn refuse(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Checks that `meta` describes a regular file within `limit`.
fn check_meta(meta: &std::fs::Metadata, limit: Limit) -> io::Result<()> {
    if !meta.is_file() {
        return Err(refuse(format!(
            "not a regular file ({}); wgraph reads only regular files",
            kind_of(meta)
        )));
    }
    if meta.len() > limit.bytes {
        return Err(refuse(format!(
            "the file is {}, over the limit of {limit}",
            human_size(meta.len())
        )));
    }
    Ok(())
}

/// Checks, without opening it, that `path` is a regular file within `limit`
/// (for files another library opens, such as models).
pub fn check(path: &Path, limit: Limit) -> io::Result<()> {
    check_meta(&std::fs::metadata(path)?, limit)
}

/// Reads `path` whole if it is a regular file within `limit`. Errors are
/// [`io::Error`]s whose message does not repeat the path (callers say
/// "cannot read `PATH`: ...").
pub fn read(path: &Path, limit: Limit) -> io::Result<Vec<u8>> {
    // Look before opening: opening a FIFO blocks until a writer comes.
    check(path, limit)?;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    check_meta(&meta, limit)?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(meta.len() as usize)
        .map_err(|_| refuse(format!("no memory for {}", human_size(meta.len()))))?;
    file.take(limit.bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit.bytes {
        return Err(refuse(format!(
            "the file grew past the limit of {limit} while being read"
        )));
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, limit: Limit) -> io::Result<String> {
    String::from_utf8(read(path, limit)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.world");
        std::fs::write(&f, "0123456789").unwrap();
        assert_eq!(read(&f, GRAPH).unwrap(), b"0123456789");
        let small = Limit {
            bytes: 9,
            what: "tests",
        };
        assert_eq!(
            read(&f, small).unwrap_err().to_string(),
            "the file is 10 bytes, over the limit of 9 bytes for tests"
        );
        assert_eq!(
            read(dir.path(), GRAPH).unwrap_err().to_string(),
            "not a regular file (a directory); wgraph reads only regular files"
        );
        #[cfg(unix)]
        {
            let e = read(Path::new("/dev/zero"), DATA).unwrap_err().to_string();
            assert_eq!(
                e,
                "not a regular file (a character device); wgraph reads only regular files"
            );
            let fifo = dir.path().join("fifo");
            let made = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap();
            assert!(made.success());
            // Would block forever if it were opened.
            let e = read(&fifo, GRAPH).unwrap_err().to_string();
            assert!(e.contains("a named pipe"), "{e}");
        }
        assert_eq!(human_size(16 << 20), "16 MiB");
        assert_eq!(human_size(1536 << 20), "1.5 GiB");
        assert_eq!(GRAPH.to_string(), "4 MiB for graph files");
    }
}

//! `serve --session-store DIR`: where players' worlds are kept.
//!
//! One JSON file per world (`g<GRAPH>-<ID>.json`): its snapshot (the format
//! of `--save-state`), a SHA-256 of its token, the server that runs it
//! (`owner`) and how long that server's claim lasts (`live_until_ms`).
//!
//! - [`SessionStore`] — one graph's view of the store (a plain config:
//!   directory, graph, owner, lease): where a session's file is
//!   ([`SessionStore::place`]) and taking a kept world back
//!   ([`SessionStore::take`], renamed aside while it reopens: two sockets
//!   never both get it).
//! - [`KeptPlace`] — a running world's file: written on eviction and every
//!   `--snapshot-every` ticks ([`KeptPlace::write`], temporary file +
//!   rename), fenced by the file's identity so no world runs on two
//!   replicas ([`StoreError::Taken`]).
//! - [`Kept`] — a world read back from the store, done with or put back.
//! - [`sweep`] — the store is bounded in time: worlds nobody came back for
//!   within `--store-keep` are deleted, leftovers of a crash (a temporary
//!   file, a world renamed aside while reopening) are cleaned up or put back
//!   ([`Swept`] says what was done).

use crate::Token;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `--session-store DIR`: per-player worlds whose player is gone are kept
/// here (one JSON file each: the snapshot and a SHA-256 of the session's
/// token) and come back as they were when the player returns.
#[derive(Debug, Clone)]
pub struct SessionStore {
    /// The store's directory (shared by replicas).
    pub dir: PathBuf,
    /// The graph's place on the command line (its files' prefix).
    pub graph: usize,
    /// This server among the replicas sharing the store.
    pub owner: Arc<str>,
    /// How long a periodic snapshot claims a world: [`LEASE`], or three
    /// snapshot intervals at the graph's fps when that is longer (see
    /// [`SessionStore::lease_for`]).
    pub lease: Duration,
    /// Worlds are written every `--snapshot-every` ticks too (replicas).
    pub periodic: bool,
}

/// How long (at least) a running world's periodic snapshot claims it for
/// its server: another replica sharing the store takes the world only once
/// the claim has run out (its server stopped writing: it died). A world
/// kept on eviction claims nothing. A replica that took a world writes its
/// own claim at once, and the first server, finding its file gone or
/// claimed by another at its next snapshot, stops its copy: no world runs on
/// two replicas for longer than one snapshot interval, and only when its
/// first server stalled past the claim.
pub const LEASE: Duration = Duration::from_secs(3);

/// A world renamed aside while a server reopened it is put back when it
/// has lain there this long (that server died while opening it).
pub const OPENING_STALE: Duration = Duration::from_secs(60);

/// How often a server sweeps its store.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A file's (device, inode), to tell one file from its replacement.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    wgraph_session::hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// Why a world's file could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another replica took the world (its file is gone, or names another
    /// owner): this copy must stop.
    #[error("another server has taken the world")]
    Taken,
    /// The file could not be written (the path and the system's reason).
    #[error("{0}")]
    Io(String),
    /// The world could not be snapshotted.
    #[error("{0}")]
    Snapshot(String),
}

/// Why a kept world cannot be taken back now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TakeError {
    /// Another replica's claim on the world runs this much longer.
    #[error("this world is running on another server; try again in {:.1} s", .retry_in.as_secs_f64())]
    Elsewhere {
        /// What is left of the other server's claim.
        retry_in: Duration,
    },
}

/// Where one session is kept.
#[derive(Debug)]
pub struct KeptPlace {
    path: PathBuf,
    token_sha256: String,
    owner: Arc<str>,
    /// How long a periodic snapshot claims the world (see [`LEASE`]).
    lease: Duration,
    /// The file this server last wrote for the world (device, inode): a
    /// missing file or another one there means another replica took it.
    claimed: std::cell::Cell<Option<(u64, u64)>>,
}

/// A session read back from the store.
#[derive(Debug)]
pub struct Kept {
    /// The tick the world was kept at.
    pub tick: u64,
    /// Its snapshot (the `--save-state` format).
    pub snapshot: serde_json::Value,
    /// Its file, and where it lies while the world is being opened.
    path: PathBuf,
    opening: PathBuf,
}

impl SessionStore {
    /// The claim a periodic snapshot makes: three snapshot intervals
    /// (`snapshot_every` ticks at `fps`) when that is longer than [`LEASE`].
    pub fn lease_for(snapshot_every: Option<u64>, fps: Option<f64>) -> Duration {
        snapshot_every
            .zip(fps)
            .and_then(|(every, fps)| Duration::try_from_secs_f64(3.0 * every as f64 / fps).ok())
            .filter(|l| *l > LEASE)
            .unwrap_or(LEASE)
    }

    /// Session ids are 12 hex digits (they name files).
    fn file(&self, id: &str) -> Option<PathBuf> {
        (id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.dir.join(format!("g{}-{id}.json", self.graph)))
    }

    /// Where session `id` (steered with `token`) is kept.
    pub fn place(&self, id: &str, token: &Token) -> KeptPlace {
        KeptPlace {
            path: self
                .file(id)
                .unwrap_or_else(|| self.dir.join(format!("g{}-invalid.json", self.graph))),
            token_sha256: sha256_hex(token.as_str()),
            owner: Arc::clone(&self.owner),
            lease: self.lease,
            claimed: std::cell::Cell::new(None),
        }
    }

    /// Session `id`, if kept here and `token` is its token. Its file is
    /// first renamed aside (atomic: two sockets naming the same session
    /// never both get it); [`Kept::done`] removes it once the world runs
    /// again, [`Kept::put_back`] returns it when the world could not start.
    /// `Some(Err(_))`: the world is running on another replica now.
    pub fn take(&self, id: &str, token: &str) -> Option<Result<Kept, TakeError>> {
        let path = self.file(id)?;
        let opening = path.with_extension("json.opening");
        std::fs::rename(&path, &opening).ok()?;
        let kept = (|| {
            let text =
                wgraph_engine::input::read_to_string(&opening, wgraph_engine::input::DATA).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            let stored = json["token_sha256"].as_str()?;
            // Compared in constant time, like the token itself.
            if !crate::same_secret(stored, &sha256_hex(token)) {
                return None;
            }
            let until = json["live_until_ms"].as_u64().unwrap_or(0);
            let owner = json["owner"].as_str().unwrap_or_default();
            let now = unix_ms();
            if until > now && owner != &*self.owner {
                return Some(Err(TakeError::Elsewhere {
                    retry_in: Duration::from_millis(until - now),
                }));
            }
            Some(Ok(Kept {
                tick: json["tick"].as_u64().unwrap_or(0),
                snapshot: json["snapshot"].clone(),
                path: path.clone(),
                opening: opening.clone(),
            }))
        })();
        if !matches!(kept, Some(Ok(_))) {
            let _ = std::fs::rename(&opening, &path);
        }
        kept
    }
}

impl Kept {
    /// The world runs again: its file goes.
    pub fn done(&self) {
        let _ = std::fs::remove_file(&self.opening);
    }

    /// The world could not start: its file stays for another try.
    pub fn put_back(&self) {
        let _ = std::fs::rename(&self.opening, &self.path);
    }
}

impl KeptPlace {
    /// Writes `world`'s snapshot (to a temporary file renamed into place, so
    /// a crash never leaves half a session); returns its tick.
    pub fn keep(&self, world: &wgraph_engine::world::World) -> Result<u64, StoreError> {
        let snapshot = world
            .snapshot()
            .map_err(|e| StoreError::Snapshot(e.to_string()))?;
        let tick = world.ticks_done();
        self.write(tick, &snapshot, false)?;
        Ok(tick)
    }

    /// Writes a snapshot taken at `tick`; `live`: the world runs on here,
    /// claimed for the store's lease. A live write first checks that the
    /// world is still this server's: its file is the one this server last
    /// wrote (a stat, not a read of the snapshot).
    pub fn write(
        &self,
        tick: u64,
        snapshot: &serde_json::Value,
        live: bool,
    ) -> Result<(), StoreError> {
        if live
            && let Some(mine) = self.claimed.get()
            && file_identity(&self.path) != Some(mine)
        {
            return Err(StoreError::Taken);
        }
        let live_until_ms = if live {
            unix_ms().saturating_add(self.lease.as_millis() as u64)
        } else {
            0
        };
        let text = serde_json::json!({
            "wgraph_session": 1,
            "token_sha256": self.token_sha256,
            "tick": tick,
            "owner": &*self.owner,
            "live_until_ms": live_until_ms,
            "snapshot": snapshot,
        })
        .to_string();
        let tmp = self.path.with_extension("json.tmp");
        wgraph_engine::output::write_file(&tmp, text.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| StoreError::Io(format!("{}: {e}", self.path.display())))?;
        self.claimed.set(file_identity(&self.path));
        Ok(())
    }
}

/// What a [`sweep`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Kept worlds older than the keep time, deleted.
    pub expired: usize,
    /// Worlds left renamed aside by a server that died opening them, put back.
    pub put_back: usize,
    /// Temporary files of interrupted writes, deleted.
    pub temporary: usize,
}

/// Bounds the store in time: deletes every kept world (`g*-*.json`) whose
/// file was last written more than `keep` ago (a running world's file is
/// rewritten every snapshot interval, well within its claim: `keep` is
/// never less than twice the longest claim, so only worlds nobody runs
/// expire), and cleans up after crashed servers. Only the store's own file
/// names are touched; anything else in the directory is left alone.
pub fn sweep(dir: &Path, keep: Duration, now: SystemTime) -> std::io::Result<Swept> {
    let mut swept = Swept::default();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or(Duration::ZERO);
        let Some((stem, kind)) = store_file(name) else {
            continue;
        };
        match kind {
            StoreFile::World if age > keep && std::fs::remove_file(&path).is_ok() => {
                swept.expired += 1;
            }
            StoreFile::Temporary if age > OPENING_STALE && std::fs::remove_file(&path).is_ok() => {
                swept.temporary += 1;
            }
            StoreFile::Opening if age > OPENING_STALE => {
                let world = dir.join(format!("{stem}.json"));
                // Never over a world written since (`rename` would replace it).
                if !world.exists() && std::fs::rename(&path, &world).is_ok() {
                    swept.put_back += 1;
                }
            }
            _ => {}
        }
    }
    Ok(swept)
}

impl Swept {
    /// The log line, if anything was done.
    pub fn line(&self, keep: Duration) -> Option<String> {
        let mut parts = Vec::new();
        if self.expired > 0 {
            parts.push(format!(
                "{} kept world(s) nobody came back for in {} s deleted",
                self.expired,
                keep.as_secs()
            ));
        }
        if self.put_back > 0 {
            parts.push(format!(
                "{} world(s) a server left half-reopened put back",
                self.put_back
            ));
        }
        if self.temporary > 0 {
            parts.push(format!(
                "{} temporary file(s) of interrupted writes deleted",
                self.temporary
            ));
        }
        (!parts.is_empty()).then(|| format!("session store: {}", parts.join("; ")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreFile {
    World,
    Temporary,
    Opening,
}

/// `g<digits>-<12 hex>` followed by `.json`, `.json.tmp` or `.json.opening`:
/// the stem and which.
fn store_file(name: &str) -> Option<(&str, StoreFile)> {
    let (stem, kind) = if let Some(stem) = name.strip_suffix(".json") {
        (stem, StoreFile::World)
    } else if let Some(stem) = name.strip_suffix(".json.tmp") {
        (stem, StoreFile::Temporary)
    } else if let Some(stem) = name.strip_suffix(".json.opening") {
        (stem, StoreFile::Opening)
    } else {
        return None;
    };
    let (graph, id) = stem.strip_prefix('g')?.split_once('-')?;
    let ours = !graph.is_empty()
        && graph.bytes().all(|b| b.is_ascii_digit())
        && id.len() == 12
        && id.bytes().all(|b| b.is_ascii_hexdigit());
    ours.then_some((stem, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path, age: Duration, now: SystemTime) {
        std::fs::write(path, "{}").unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(now - age).unwrap();
    }

    #[test]
    fn a_sweep_expires_old_worlds_and_cleans_up_after_crashes_only_in_its_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        aged(&d.join("g0-0123456789ab.json"), 30 * hour, now); // expired
        aged(&d.join("g1-aaaaaaaaaaaa.json"), hour, now); // kept
        aged(&d.join("g0-bbbbbbbbbbbb.json.tmp"), hour, now); // interrupted write
        aged(&d.join("g0-cccccccccccc.json.opening"), hour, now); // crashed open
        aged(
            &d.join("g0-dddddddddddd.json.opening"),
            Duration::from_secs(5),
            now,
        ); // opening now
        aged(&d.join("notes.json"), 30 * hour, now); // not the store's
        aged(&d.join("g0-0123.json"), 30 * hour, now); // not a session id
        let swept = sweep(d, 24 * hour, now).unwrap();
        assert_eq!(
            swept,
            Swept {
                expired: 1,
                put_back: 1,
                temporary: 1
            }
        );
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "g0-0123.json",
                "g0-cccccccccccc.json",
                "g0-dddddddddddd.json.opening",
                "g1-aaaaaaaaaaaa.json",
                "notes.json"
            ]
        );
    }

    fn store(dir: &Path, owner: &str, lease: Duration) -> SessionStore {
        SessionStore {
            dir: dir.to_path_buf(),
            graph: 0,
            owner: owner.into(),
            lease,
            periodic: true,
        }
    }

    const ID: &str = "0123456789ab";

    #[test]
    fn a_kept_world_comes_back_only_with_its_token_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), "a", LEASE);
        let token = Token::parse("s3cret-token-of-the-session").unwrap();
        let snapshot = serde_json::json!({ "nodes": [1, 2, 3] });
        a.place(ID, &token).write(7, &snapshot, false).unwrap();
        // A wrong token gets nothing, and the file stays where it was.
        assert!(a.take(ID, "another-token-of-some-length").is_none());
        assert!(dir.path().join(format!("g0-{ID}.json")).is_file());
        // Not a session id: nothing (ids name files).
        assert!(a.take("../../etc/pass", token.as_str()).is_none());
        let kept = a.take(ID, token.as_str()).unwrap().unwrap();
        assert_eq!((kept.tick, &kept.snapshot), (7, &snapshot));
        // Renamed aside while it opens: a second socket does not get it.
        assert!(a.take(ID, token.as_str()).is_none());
        kept.put_back();
        let kept = a.take(ID, token.as_str()).unwrap().unwrap();
        kept.done();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_claimed_world_is_fenced_between_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let token = Token::parse("s3cret-token-of-the-session").unwrap();
        let snapshot = serde_json::json!({});
        // Replica `a` runs the world, claimed for a minute.
        let a = store(dir.path(), "a", Duration::from_secs(60));
        let running = a.place(ID, &token);
        running.write(1, &snapshot, true).unwrap();
        running.write(2, &snapshot, true).unwrap();
        // Replica `b` may not take it while the claim lasts …
        let b = store(dir.path(), "b", Duration::from_secs(60));
        match b.take(ID, token.as_str()) {
            Some(Err(TakeError::Elsewhere { retry_in })) => {
                assert!(retry_in > Duration::from_secs(50), "{retry_in:?}");
            }
            other => panic!("{other:?}"),
        }
        // … and the file is back in place for `a`.
        running.write(3, &snapshot, true).unwrap();
        // A claim that has run out (`a` stalled) lets `b` take the world; `b`
        // claims it at once, and `a`'s next periodic write finds it gone.
        let a_stalled = store(dir.path(), "a", Duration::ZERO);
        let stalled = a_stalled.place(ID, &token);
        stalled.write(4, &snapshot, true).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let kept = b.take(ID, token.as_str()).unwrap().unwrap();
        assert_eq!(kept.tick, 4);
        b.place(ID, &token)
            .write(kept.tick, &kept.snapshot, true)
            .unwrap();
        kept.done();
        assert_eq!(
            stalled.write(5, &snapshot, true),
            Err(StoreError::Taken),
            "a replica whose world was taken must stop its copy"
        );
        // `b`'s claim keeps `a` out now.
        assert_eq!(a.take(ID, token.as_str()).map(|r| r.is_err()), Some(true));
    }
}

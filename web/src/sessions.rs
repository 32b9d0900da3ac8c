//! A world per player: the sessions of a graph served in per-player mode.
//!
//! - [`ServedGraph`] — one served graph: either [`ServedGraph::Shared`] (one world, many
//!   viewers, one controller: `serve --shared`) or [`ServedGraph::PerPlayer`]:
//!   every player who opens it with the link's token gets a world of their
//!   own, made by the graph's [`OpenWorld`] (the binary's: it loads a
//!   session and starts its tick thread).
//! - [`Players`] — a per-player graph's live sessions by id. A session has
//!   an id and its own [`Token`](crate::Token); a socket that shows both
//!   gets the same world back. When a session's last socket closes, the
//!   world keeps its place for [`SessionLimits::resume_within`]; after that
//!   (or when it fails) the reaper stops it and frees its place.
//!   [`SessionLimits::max_worlds`] bounds the sessions of all graphs, and
//!   [`SessionLimits::max_worlds_per_address`] those one address opens (per
//!   graph).

use crate::{WebWorld, WorldStatus};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wgraph_engine::batch::BatchStats;

/// Makes a new world of a graph (a session and its tick thread) for the
/// session id it is given; the error is ready to show to the player.
pub type OpenWorld = Arc<dyn Fn(&str) -> Result<WebWorld, String> + Send + Sync>;

/// Brings back a session the server kept in its store when its player
/// left: `None` when the store has no session with this id and token.
pub type ReopenWorld = Arc<dyn Fn(&str, &str) -> Option<Result<WebWorld, String>> + Send + Sync>;

/// Bounds on per-player sessions (`serve --max-worlds`, `--resume-within`).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Sessions of all graphs at once; one more player is told the server
    /// is full.
    pub max_worlds: usize,
    /// How long a world waits for its player to come back (then it ends).
    pub resume_within: Duration,
    /// Sessions of one graph that one IP address has open at once.
    pub max_worlds_per_address: usize,
    /// With a session store: how long a world with no player runs before it
    /// is kept in the store and its memory freed (instead of ending).
    pub idle: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_worlds: 16,
            resume_within: Duration::from_secs(60),
            max_worlds_per_address: 4,
            idle: Duration::from_secs(300),
        }
    }
}

/// One served graph.
pub enum ServedGraph {
    /// One world for everyone (`--shared`).
    Shared(WebWorld),
    /// A world per player.
    PerPlayer {
        name: String,
        /// The token of the link `serve` printed: it lets a page open a world.
        link: crate::Token,
        open: OpenWorld,
        /// Brings back stored sessions (`serve --session-store`).
        reopen: Option<ReopenWorld>,
        /// How the sessions' model calls were fused (`None`: they are not).
        batch: Option<Arc<BatchStats>>,
        /// Most worlds of this graph (its memory plan); `None`: only the
        /// server's `max_worlds` bounds them.
        max_worlds: Option<usize>,
    },
}

/// A per-player session.
struct Live {
    world: Arc<WebWorld>,
    /// Where the player who opened it came from.
    ip: IpAddr,
    sockets: usize,
    /// When its last socket closed.
    left_at: Option<Instant>,
}

/// A per-player graph's sessions (see the module docs).
pub struct Players {
    pub name: String,
    pub link: crate::Token,
    open: OpenWorld,
    reopen: Option<ReopenWorld>,
    /// How the sessions' model calls were fused, for `/metrics`.
    pub batch: Option<Arc<BatchStats>>,
    /// Most worlds of this graph at once (its memory plan).
    max_worlds: Option<usize>,
    sessions: Mutex<HashMap<String, Live>>,
}

/// Why a player got no world.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// `max_worlds` sessions are running.
    Full(usize),
    /// This address has `max_worlds_per_address` sessions running.
    TooManyHere(usize),
    /// The world could not be made (its error).
    Failed(String),
}

impl Players {
    pub fn new(
        name: String,
        link: crate::Token,
        open: OpenWorld,
        reopen: Option<ReopenWorld>,
        batch: Option<Arc<BatchStats>>,
        max_worlds: Option<usize>,
    ) -> Self {
        Players {
            name,
            link,
            open,
            reopen,
            batch,
            max_worlds,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session `id` if `token` is its token; one more socket on it.
    pub fn resume(&self, id: &str, token: &str) -> Option<Arc<WebWorld>> {
        let mut sessions = self.lock();
        let live = sessions.get_mut(id)?;
        if !live.world.token.matches(token) || live.world.status() != WorldStatus::Running {
            return None;
        }
        live.sockets += 1;
        live.left_at = None;
        Some(Arc::clone(&live.world))
    }

    /// A new world (with one socket on it) and its id, unless `count`
    /// (sessions of all graphs) is at `limits.max_worlds`. Blocks while the
    /// world is made: call it off the async threads.
    pub fn create(
        &self,
        ip: IpAddr,
        count: &AtomicUsize,
        limits: &SessionLimits,
    ) -> Result<(String, Arc<WebWorld>), Refused> {
        let id = crate::Token::random()
            .map(|t| t.as_str()[..12].to_string())
            .map_err(|e| Refused::Failed(e.to_string()))?;
        let world = self.start(ip, count, limits, || (self.open)(&id))?;
        self.insert(&id, &world, ip);
        Ok((id, world))
    }

    /// Sessions opened from `ip` that run now.
    fn opened_from(&self, ip: IpAddr) -> usize {
        self.lock().values().filter(|l| l.ip == ip).count()
    }

    /// Session `id` from the store, when it is there and `token` is its
    /// token; `Ok(None)` when it is not. Blocks: call it off the async
    /// threads.
    pub fn reopen(
        &self,
        id: &str,
        token: &str,
        ip: IpAddr,
        count: &AtomicUsize,
        limits: &SessionLimits,
    ) -> Result<Option<Arc<WebWorld>>, Refused> {
        let Some(reopen) = &self.reopen else {
            return Ok(None);
        };
        // A session that is running (another socket resumed it meanwhile).
        if let Some(w) = self.resume(id, token) {
            return Ok(Some(w));
        }
        let mut found = true;
        let world = self.start(ip, count, limits, || match reopen(id, token) {
            Some(made) => made,
            None => {
                found = false;
                Err(String::new())
            }
        });
        match world {
            Ok(w) => {
                self.insert(id, &w, ip);
                Ok(Some(w))
            }
            Err(_) if !found => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes a world with `make` under the `max_worlds` bound.
    fn start(
        &self,
        ip: IpAddr,
        count: &AtomicUsize,
        limits: &SessionLimits,
        make: impl FnOnce() -> Result<WebWorld, String>,
    ) -> Result<Arc<WebWorld>, Refused> {
        let here = self.opened_from(ip);
        if here >= limits.max_worlds_per_address {
            return Err(Refused::TooManyHere(here));
        }
        // The graph's memory plan: one more world would not fit.
        let running = self.lock().len();
        if self.max_worlds.is_some_and(|m| running >= m) {
            return Err(Refused::Full(running));
        }
        let taken = count.fetch_add(1, Ordering::SeqCst);
        if taken >= limits.max_worlds {
            count.fetch_sub(1, Ordering::SeqCst);
            return Err(Refused::Full(taken));
        }
        make().map(Arc::new).map_err(|e| {
            count.fetch_sub(1, Ordering::SeqCst);
            Refused::Failed(e)
        })
    }

    fn insert(&self, id: &str, world: &Arc<WebWorld>, ip: IpAddr) {
        self.lock().insert(
            id.to_string(),
            Live {
                world: Arc::clone(world),
                ip,
                sockets: 1,
                left_at: None,
            },
        );
    }

    /// A socket on session `id` closed.
    pub fn left(&self, id: &str) {
        if let Some(live) = self.lock().get_mut(id) {
            live.sockets = live.sockets.saturating_sub(1);
            if live.sockets == 0 {
                live.left_at = Some(Instant::now());
            }
        }
    }

    /// Stops and forgets the sessions whose player has been gone longer
    /// than `resume_within`, and those whose world stopped; returns their
    /// ids and why, one line each.
    pub fn reap(&self, count: &AtomicUsize, resume_within: Duration) -> Vec<String> {
        let mut ended = Vec::new();
        self.lock().retain(|id, live| {
            let why = match live.world.status() {
                WorldStatus::Failed(_) => Some("its world failed".to_string()),
                WorldStatus::Running => live
                    .left_at
                    .filter(|at| at.elapsed() >= resume_within)
                    .map(|_| format!("no player for {} s", resume_within.as_secs_f64())),
            };
            match why {
                Some(why) => {
                    live.world.evict();
                    count.fetch_sub(1, Ordering::SeqCst);
                    ended.push(format!("session {id} ended ({why})"));
                    false
                }
                None => true,
            }
        });
        ended
    }

    /// How long one of this graph's worlds may have no player before the
    /// reaper takes it: `idle` when a store keeps it, else `resume_within`.
    pub fn grace(&self, limits: &SessionLimits) -> Duration {
        if self.reopen.is_some() {
            limits.idle
        } else {
            limits.resume_within
        }
    }

    /// Calls `f` with each running session's id and world.
    pub fn each(&self, mut f: impl FnMut(&str, &WebWorld)) {
        for (id, live) in self.lock().iter() {
            f(id, &live.world);
        }
    }

    /// Stops every session (the server is stopping).
    pub fn stop_all(&self) {
        // As if every player left: a session store keeps each world, so a
        // restarted server (or another replica) brings it back.
        for live in self.lock().values() {
            live.world.evict();
        }
    }
}

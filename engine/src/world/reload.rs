//! The background thread that rebuilds a world's graph: [`Reloader`]
//! takes [`ReloadRequest`]s (files changed, parameter changes, a scripted
//! rebuild), coalesces a burst into one build through the world's
//! [`GraphSource`], and sends the result to the world's control channel.
//!
//! A burst that is one parameter change and nothing else is first offered
//! to [`GraphSource::retune`], with the graph the world runs (held weakly,
//! so only the world keeps it alive): the
//! node it names is built again and nothing else (no parse, no model
//! lookup); the reload's phases then read `node rebuilt`. When the source
//! declines (a change that rewires the graph, a source that cannot), the
//! graph is rebuilt with every change, as for a file change.

use super::*;

/// A request to the [`Reloader`].
pub(super) enum ReloadRequest {
    Files(Vec<PathBuf>),
    /// Rebuild now and answer on the channel (scripted: replays).
    Rebuild(Sender<Control>),
    /// A parameter change; with a reply channel when the world waits for it.
    Set(ParamSet, Option<Sender<Control>>),
    /// Drops a parameter change: the graph's own value again.
    Unset {
        node: String,
        param: String,
    },
}

/// The background thread that rebuilds a world's graph (see module docs).
/// It ends when the world and every handle are gone (its request channel
/// closes).
pub struct Reloader {
    pub(super) requests: Sender<ReloadRequest>,
}

impl Reloader {
    /// Starts the thread; its results go to `controls` (a world's channel).
    pub(super) fn start(
        source: Arc<dyn GraphSource>,
        controls: Sender<Control>,
        initial: Vec<ParamSet>,
        live: Arc<Live>,
    ) -> Self {
        let (tx, rx) = unbounded::<ReloadRequest>();
        // A failed spawn leaves a closed channel: reload requests then fail.
        let _ = std::thread::Builder::new()
            .name("wgraph-reload".into())
            .spawn(move || reload_loop(&*source, &rx, &controls, initial, &live));
        Reloader { requests: tx }
    }
}

fn reload_loop(
    source: &dyn GraphSource,
    requests: &Receiver<ReloadRequest>,
    controls: &Sender<Control>,
    mut sets: Vec<ParamSet>,
    live: &Live,
) {
    // The graph last sent to the world: a change is made in place only to
    // the graph the world runs once it runs that one (not while a rebuild
    // is on its way, which the change would undo).
    let mut sent = live.graph.lock().unwrap_or_else(|p| p.into_inner()).clone();
    while let Ok(first) = requests.recv() {
        // Coalesce a burst: every file change and parameter change waiting
        // now goes into one rebuild; a waiting scripted event gets the reply.
        let mut files = Vec::new();
        let mut reply = None;
        let mut last_set = None;
        let mut requests_in_burst = 0;
        let mut rebuild_asked = false;
        // What each change replaced (the value the world runs with), so a
        // change that fails gives it back.
        let mut replaced: Vec<ParamSet> = Vec::new();
        for request in std::iter::once(first).chain(requests.try_iter()) {
            requests_in_burst += 1;
            match request {
                ReloadRequest::Rebuild(r) => {
                    reply = Some(r);
                    rebuild_asked = true;
                }
                ReloadRequest::Files(f) => {
                    for p in f {
                        if !files.contains(&p) {
                            files.push(p);
                        }
                    }
                }
                ReloadRequest::Unset { node, param } => {
                    sets.retain(|s| !(s.node == node && s.param == param));
                    last_set = Some(ReloadCause::Unset { node, param });
                }
                ReloadRequest::Set(set, r) => {
                    // One entry per NODE.PARAM: the set does not grow.
                    if let Some(i) = sets
                        .iter()
                        .position(|s| s.node == set.node && s.param == set.param)
                    {
                        replaced.push(sets.remove(i));
                    }
                    sets.push(set.clone());
                    last_set = Some(ReloadCause::Set(set));
                    if r.is_some() {
                        reply = r;
                    }
                }
            }
        }
        let cause = match last_set {
            Some(cause) if files.is_empty() => cause,
            _ => ReloadCause::Files(files),
        };
        let started = Instant::now();
        // One parameter change alone: the node it names, nothing else.
        let retuned = match &cause {
            ReloadCause::Set(set) if requests_in_burst == 1 && !rebuild_asked => {
                let running = live.graph.lock().unwrap_or_else(|p| p.into_inner()).clone();
                // Gone: the world ended.
                let current = running.upgrade().filter(|_| running.ptr_eq(&sent));
                current.and_then(|graph| source.retune(&graph, set))
            }
            _ => None,
        };
        let result = match retuned {
            Some(result) => result,
            None => source.build(&sets),
        };
        let control = match result {
            Ok(built) => {
                let graph = Arc::new(built.graph);
                sent = Arc::downgrade(&graph);
                Control::Swap(Box::new(Prepared {
                    graph,
                    files: built.files,
                    provenance: built.provenance,
                    phases: built.phases,
                    cause,
                    prepare: started.elapsed(),
                }))
            }
            Err(message) => {
                if let ReloadCause::Set(bad) = &cause {
                    // A parameter change that does not build is dropped, so
                    // the next edit is not poisoned by it; the value it
                    // replaced (still running) is kept.
                    sets.retain(|s| s != bad);
                    if let Some(before) = replaced
                        .iter()
                        .find(|s| s.node == bad.node && s.param == bad.param)
                    {
                        sets.push(before.clone());
                    }
                }
                Control::ReloadFailed { cause, message }
            }
        };
        let to = reply.as_ref().unwrap_or(controls);
        if to.send(control).is_err() {
            return;
        }
    }
}

//! What the server tells its operator about viewers: one line each, never
//! raw client text, never a flood.
//!
//! - [`visible`] — client text as it may appear in a terminal: control
//!   characters (C0 including line ends, DEL, C1) become the Unicode control
//!   pictures or U+FFFD, and bidirectional overrides become U+FFFD, so a
//!   prompt or message type cannot retitle, clear or rewrite the operator's
//!   terminal, forge a log line, or reorder what is shown.
//! - [`ViewerLog`] — the server's sink for viewer mistakes: every line made
//!   [`visible`], at most [`ViewerLog::BURST`] lines per
//!   [`ViewerLog::WINDOW`]; the rest are counted and summed up in one line
//!   when the next window opens (or when the server stops).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the server's lines go (the program prints them).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// Client text made safe to print on one terminal line (see the module
/// docs): the grammar's [`escape_line`](wgraph_grammar::diagnostic::escape_line),
/// the one escaping every terminal-bound text of wgraph goes through.
pub use wgraph_grammar::diagnostic::escape_line as visible;

/// Characters a terminal acts on, or that reorder the text around them.
pub(crate) use wgraph_grammar::diagnostic::acts_on_a_line as hidden;

/// The rate-limited, sanitising sink for viewer mistakes.
#[derive(Clone)]
pub struct ViewerLog {
    out: Log,
    state: Arc<Mutex<Window>>,
}

struct Window {
    start: Instant,
    shown: u32,
    held_back: u64,
}

impl ViewerLog {
    /// Lines shown per window.
    pub const BURST: u32 = 10;
    /// The window.
    pub const WINDOW: Duration = Duration::from_secs(10);

    /// A sink printing through `out`.
    pub fn new(out: Log) -> ViewerLog {
        ViewerLog {
            out,
            state: Arc::new(Mutex::new(Window {
                start: Instant::now(),
                shown: 0,
                held_back: 0,
            })),
        }
    }

    /// Logs one line (made [`visible`]) unless this window's lines are
    /// spent.
    pub fn line(&self, line: &str) {
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if w.start.elapsed() >= Self::WINDOW {
            self.flush_locked(&mut w);
            w.start = Instant::now();
            w.shown = 0;
        }
        if w.shown < Self::BURST {
            w.shown += 1;
            (self.out)(&visible(line));
        } else {
            w.held_back += 1;
        }
    }

    /// Says how many lines were held back, if any (at the next window, and
    /// when the server stops).
    pub fn flush(&self) {
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_locked(&mut w);
    }

    fn flush_locked(&self, w: &mut Window) {
        if w.held_back > 0 {
            (self.out)(&format!(
                "web: {} more viewer errors not shown (at most {} lines per {} s)",
                w.held_back,
                Self::BURST,
                Self::WINDOW.as_secs()
            ));
            w.held_back = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_cannot_drive_the_terminal() {
        assert_eq!(visible("a snowy forest"), "a snowy forest");
        assert_eq!(
            visible("\u{1b}]0;pwned\u{7}\u{1b}[2J\nfake line\r\u{9b}x\u{202e}"),
            "\u{241b}]0;pwned\u{2407}\u{241b}[2J\u{240a}fake line\u{240d}\u{fffd}x\u{fffd}"
        );
    }

    #[test]
    fn a_flood_is_summed_up_not_printed() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = Arc::clone(&lines);
        let log = ViewerLog::new(Arc::new(move |l: &str| sink.lock().unwrap().push(l.into())));
        for i in 0..48_000 {
            log.line(&format!("malformed message {i}\u{1b}[2J"));
        }
        log.flush();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), ViewerLog::BURST as usize + 1, "{lines:?}");
        assert!(lines.iter().all(|l| !l.contains('\u{1b}')));
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with("web: 47990 more viewer errors not shown"),
            "{lines:?}"
        );
    }
}

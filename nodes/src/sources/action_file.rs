//! Action files: the keys a player holds, one line per tick.
//!
//! ```text
//! # walk forward, then turn (a whole-line comment is not a tick)
//! W
//! W+Left        # keys joined by `+` or spaces, any case
//! d space
//! -             # no input (an empty line too)
//! ```

use wgraph_engine::value::{Actions, Key};

/// Parses an action file into one [`Actions`] per line (whole-line comments
/// are not ticks; `-` and empty lines are ticks without input). An error
/// gives the 1-based line number and a message.
pub fn parse_action_file(text: &str) -> Result<Vec<Actions>, (usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with('#'))
        .map(|(i, line)| {
            let line = line.split('#').next().unwrap_or("").trim();
            if line == "-" {
                return Ok(Actions::none());
            }
            line.split(|c: char| c == '+' || c.is_whitespace())
                .filter(|w| !w.is_empty())
                .try_fold(Actions::none(), |acts, word| match Key::parse(word) {
                    Some(k) => Ok(acts.with(k)),
                    None => Err((i + 1, unknown_key(word))),
                })
        })
        .collect()
}

fn unknown_key(word: &str) -> String {
    let keys: Vec<&str> = Key::ALL.iter().map(|k| k.name()).collect();
    format!("unknown key `{word}` (keys: {})", keys.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_comments_and_idle_lines() {
        let a = parse_action_file("# intro\nW\nw+left  # turn\n-\n\nspace D\r\n").unwrap();
        let none = Actions::none();
        assert_eq!(
            a,
            [
                none.with(Key::W),
                none.with(Key::W).with(Key::Left),
                none,
                none,
                none.with(Key::Space).with(Key::D),
            ]
        );
        assert!(parse_action_file("").unwrap().is_empty());
    }

    #[test]
    fn reports_line_numbers() {
        let (line, msg) = parse_action_file("W\nA\nW+Q\n").unwrap_err();
        assert_eq!(line, 3);
        assert_eq!(
            msg,
            "unknown key `Q` (keys: W A S D Left Right Up Down Space)"
        );
        assert_eq!(parse_action_file("- -\n").unwrap_err().0, 1);
    }
}

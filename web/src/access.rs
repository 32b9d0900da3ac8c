//! Who may reach a served world, and who may steer it.
//!
//! The main types:
//!
//! - [`Access`] — the server's policy, built once from `serve`'s flags:
//!   which `Host` names it answers (DNS rebinding: a hostile page whose
//!   name resolves to 127.0.0.1 sends its own name as `Host`), which page
//!   origins may open a WebSocket (any other web page a player visits could
//!   otherwise drive the world through the player's browser), and whether a
//!   socket without its world's token may watch.
//! - [`Token`] — a world's secret: 128 random bits from the operating
//!   system, in the URL `serve` prints. Only a socket that shows it steers
//!   (keys, prompts, "take control"); compared in constant time.
//! - [`Role`] — what one socket may do once let in.
//!
//! The checks are pure functions over header values, so they are tested
//! here without a server; `tests/cli/serve_security.rs` drives them with a
//! real HTTP and WebSocket client.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A world's secret token (hex, 32 characters unless the operator chose one).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// The shortest token `--token` accepts.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a token cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("a token has at least {MIN_TOKEN_LEN} characters")]
    TooShort,
    #[error("a token is letters, digits, `-` and `_` only (it goes in a URL)")]
    BadCharacter,
    #[error("the operating system gave no random bytes: {0}")]
    NoRandomness(String),
}

impl Token {
    /// A fresh random token.
    pub fn random() -> Result<Token, TokenError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::NoRandomness(e.to_string()))?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// An operator's token (`--token`), checked: long enough and URL-safe.
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        if text.chars().count() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort);
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(TokenError::BadCharacter);
        }
        Ok(Token(text.to_string()))
    }

    /// The token's text, as it goes in a URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `shown` is this token. The time taken depends on the
    /// lengths only, not on where the first difference is.
    pub fn matches(&self, shown: &str) -> bool {
        same_secret(&self.0, shown)
    }
}

/// True when two secrets (tokens, their digests) are equal; the time taken
/// depends on the lengths only, not on where the first difference is.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Debug for Token {
    // Never in a log by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// What one socket may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Showed the world's token (or the world has none): may take control,
    /// send keys and edit prompts.
    Player,
    /// No token, and the server was started with `--public-view`: frames
    /// and events only.
    Viewer,
}

/// The server's access policy (see the module docs).
#[derive(Debug, Clone)]
pub struct Access {
    /// The address the server is bound to.
    pub bound: IpAddr,
    /// Host names answered besides loopback names and the bound address
    /// (`--allow-host`), lower case.
    pub extra_hosts: Vec<String>,
    /// Page origins allowed to open a WebSocket besides the server's own
    /// (`--allow-origin`), as `scheme://host[:port]`, lower case.
    pub extra_origins: Vec<String>,
    /// A socket without the token may watch (`--public-view`).
    pub public_view: bool,
    /// Worlds need no token to steer (`--no-token`).
    pub no_token: bool,
}

/// Why a request was refused (the text is the response body).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("a request needs a Host header")]
    NoHost,
    #[error(
        "this server does not answer to host `{0}` (start it with --allow-host {0} if that name is yours)"
    )]
    Host(String),
    #[error(
        "a page from origin `{0}` may not open this world's socket (start the server with --allow-origin {0} to allow it)"
    )]
    Origin(String),
    #[error(
        "this world needs its token: open the address `wgraph serve` printed (with ?token=…), or ask its operator to start it with --public-view"
    )]
    Token,
}

impl Access {
    /// A policy with the defaults: loopback names and `bound` only, same
    /// origin only, tokens required, no public view.
    pub fn local(bound: IpAddr) -> Access {
        Access {
            bound,
            extra_hosts: Vec::new(),
            extra_origins: Vec::new(),
            public_view: false,
            no_token: false,
        }
    }

    /// Checks a request's `Host` header.
    pub fn check_host(&self, host: Option<&str>) -> Result<(), Refusal> {
        let host = host.ok_or(Refusal::NoHost)?;
        let name = host_name(host).to_ascii_lowercase();
        if is_loopback_name(&name) || self.extra_hosts.contains(&name) {
            return Ok(());
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            // An address literal cannot be rebound by DNS; still, answer
            // only the one we are bound to (or any, when bound to all).
            if ip == self.bound || ip.is_loopback() || self.bound.is_unspecified() {
                return Ok(());
            }
        }
        Err(Refusal::Host(host.to_string()))
    }

    /// Checks a WebSocket upgrade's `Origin` header against the request's
    /// `Host` (already checked). No `Origin` (a program, not a browser
    /// page) passes: browsers always send one, and the token is what keeps
    /// programs out.
    pub fn check_origin(&self, origin: Option<&str>, host: &str) -> Result<(), Refusal> {
        let Some(origin) = origin else {
            return Ok(());
        };
        let lower = origin.trim_end_matches('/').to_ascii_lowercase();
        let same = ["http://", "https://"]
            .iter()
            .any(|scheme| lower.strip_prefix(scheme) == Some(&host.to_ascii_lowercase()));
        if same || self.extra_origins.contains(&lower) {
            Ok(())
        } else {
            Err(Refusal::Origin(origin.to_string()))
        }
    }

    /// What a socket that showed `shown` may do on a world with `token`.
    pub fn role(&self, token: &Token, shown: Option<&str>) -> Result<Role, Refusal> {
        if self.no_token || shown.is_some_and(|s| token.matches(s)) {
            Ok(Role::Player)
        } else if self.public_view {
            Ok(Role::Viewer)
        } else {
            Err(Refusal::Token)
        }
    }
}

/// `localhost`, `*.localhost` (browsers resolve them to loopback
/// themselves), and loopback address literals.
fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The name part of a `Host` header: `[::1]:8080` → `::1`, `a:80` → `a`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// True when serving on `addr` reaches beyond this machine.
pub fn is_public(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// Normalises an `--allow-origin` value: `scheme://host[:port]`, lower case,
/// no trailing slash. Refuses anything else (a path, no scheme, `*`).
pub fn parse_origin(text: &str) -> Result<String, String> {
    let lower = text.trim_end_matches('/').to_ascii_lowercase();
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|s| lower.strip_prefix(s))
        .ok_or_else(|| {
            format!("`{text}`: an origin is http://HOST[:PORT] or https://HOST[:PORT]")
        })?;
    if rest.is_empty() || rest.contains('/') || rest.contains('*') {
        return Err(format!(
            "`{text}`: an origin is http://HOST[:PORT] or https://HOST[:PORT], without a path or wildcard"
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Access {
        Access::local("127.0.0.1".parse().unwrap())
    }

    #[test]
    fn hosts_are_loopback_names_the_bound_address_and_those_allowed() {
        let a = local();
        for ok in [
            "127.0.0.1:8080",
            "localhost:1",
            "LOCALHOST",
            "app.localhost:9",
            "[::1]:80",
        ] {
            assert_eq!(a.check_host(Some(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "10.0.0.2:8080",
            "localhost.evil.example",
        ] {
            assert!(
                matches!(a.check_host(Some(bad)), Err(Refusal::Host(_))),
                "{bad}"
            );
        }
        assert_eq!(a.check_host(None), Err(Refusal::NoHost));
        let mut b = Access::local("192.168.1.5".parse().unwrap());
        assert_eq!(b.check_host(Some("192.168.1.5:80")), Ok(()));
        assert!(b.check_host(Some("box.lan:80")).is_err());
        b.extra_hosts.push("box.lan".into());
        assert_eq!(b.check_host(Some("Box.Lan:80")), Ok(()));
        let all = Access::local("0.0.0.0".parse().unwrap());
        assert_eq!(all.check_host(Some("10.1.2.3:80")), Ok(()));
        assert!(all.check_host(Some("evil.example")).is_err());
    }

    #[test]
    fn origins_are_same_origin_unless_allowed() {
        let mut a = local();
        let host = "127.0.0.1:8080";
        assert_eq!(a.check_origin(None, host), Ok(()));
        assert_eq!(a.check_origin(Some("http://127.0.0.1:8080"), host), Ok(()));
        for bad in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:9999",
            "http://127.0.0.1:8080.evil.example",
        ] {
            assert!(a.check_origin(Some(bad), host).is_err(), "{bad}");
        }
        a.extra_origins
            .push(parse_origin("https://Studio.Example/").unwrap());
        assert_eq!(a.check_origin(Some("https://studio.example"), host), Ok(()));
        assert!(parse_origin("*").is_err());
        assert!(parse_origin("studio.example").is_err());
        assert!(parse_origin("http://a/b").is_err());
    }

    #[test]
    fn only_the_token_steers() {
        let t = Token::parse("0123456789abcdef").unwrap();
        let mut a = local();
        assert_eq!(a.role(&t, Some("0123456789abcdef")), Ok(Role::Player));
        assert_eq!(a.role(&t, Some("0123456789abcdeX")), Err(Refusal::Token));
        assert_eq!(a.role(&t, None), Err(Refusal::Token));
        a.public_view = true;
        assert_eq!(a.role(&t, None), Ok(Role::Viewer));
        assert_eq!(a.role(&t, Some("wrong")), Ok(Role::Viewer));
        a.no_token = true;
        assert_eq!(a.role(&t, None), Ok(Role::Player));
        assert_eq!(Token::parse("short"), Err(TokenError::TooShort));
        assert_eq!(
            Token::parse("0123456789abcdef&x=1"),
            Err(TokenError::BadCharacter)
        );
        let (r1, r2) = (Token::random().unwrap(), Token::random().unwrap());
        assert_eq!(r1.as_str().len(), 32);
        assert_ne!(r1, r2);
        assert_eq!(format!("{r1:?}"), "Token(…)");
    }
}

//! The address `wgraph serve` printed, as a load test reads it: the
//! [`Target`] players connect to (its WebSocket URL) and whether its host
//! is this machine.

use std::net::IpAddr;

/// Where the players connect: the socket's address and the WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// `HOST:PORT` as written in the URL (IPv6 in brackets).
    pub(super) authority: String,
    /// The host without brackets.
    pub(super) host: String,
    pub(super) port: u16,
    /// `ws://HOST:PORT/w/N/ws?token=T`.
    pub(super) ws_url: String,
}

/// Derives the WebSocket URL from the address `serve` printed.
pub(super) fn parse_url(url: &str) -> Result<Target, String> {
    let url = url.trim();
    let rest = ["http://", "ws://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| {
            if url.starts_with("https://") || url.starts_with("wss://") {
                "TLS is not supported: `wgraph serve` speaks plain http".to_string()
            } else {
                "expected the address `wgraph serve` printed, e.g. http://127.0.0.1:8080/?token=…"
                    .to_string()
            }
        })?;
    let fragment_free = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (before_query, query) = match fragment_free.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (fragment_free, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("no host in `{url}`"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6
            .split_once(']')
            .ok_or_else(|| format!("unclosed `[` in `{authority}`"))?;
        (h, p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("no host in `{url}`"));
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("bad port `{p}` in `{url}`"))?,
    };
    // `/` or nothing is the first world; `/w/N` (with or without a trailing
    // `/` or `/ws`) is world N.
    let trimmed = path.trim_end_matches('/');
    let world = if trimmed.is_empty() {
        0
    } else {
        let n = trimmed
            .strip_prefix("/w/")
            .map(|n| n.strip_suffix("/ws").unwrap_or(n))
            .ok_or_else(|| {
                format!(
                    "expected the path `/` or `/w/N` (as `wgraph serve` prints it), not `{path}`"
                )
            })?;
        n.parse::<u32>()
            .map_err(|_| format!("bad world number `{n}` in `{url}`"))?
    };
    let token = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("token="));
    if let Some(t) = token
        && !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b))
    {
        return Err("the token has characters a URL cannot carry unescaped".into());
    }
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    Ok(Target {
        authority: authority.to_string(),
        host: host.to_string(),
        port,
        ws_url: format!("ws://{authority}/w/{world}/ws{query}"),
    })
}

/// Whether `host` is this machine: a loopback address or `localhost`.
pub(super) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_serve_prints_them() {
        let t = parse_url("http://127.0.0.1:8080/?token=abc").unwrap();
        assert_eq!(t.ws_url, "ws://127.0.0.1:8080/w/0/ws?token=abc");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        let t = parse_url("http://127.0.0.1:9/w/2?token=x-y").unwrap();
        assert_eq!(t.ws_url, "ws://127.0.0.1:9/w/2/ws?token=x-y");
        let t = parse_url("http://[::1]:81/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.ws_url.as_str()),
            ("::1", "ws://[::1]:81/w/0/ws")
        );
        assert!(is_loopback("::1") && is_loopback("localhost") && is_loopback("127.0.0.2"));
        assert!(!is_loopback("10.1.2.3") && !is_loopback("example.com"));
        for bad in [
            "",
            "ftp://x/",
            "http://",
            "http://h:0/",
            "http://h:x/",
            "http://h/foo",
            "http://h/w/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}

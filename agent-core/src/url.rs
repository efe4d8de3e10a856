//! `http://` and `https://` URLs and `host:port` authorities, read one way
//! by the compiler (which refuses a bad one with its place in the spec) and
//! by the agent (which connects to it).
//!
//! What is accepted:
//! - scheme `http` or `https`, in lowercase;
//! - host: a DNS name or IPv4 address (ASCII letters, digits, `-`, `.`,
//!   `_`), or an IPv6 address in brackets (`[::1]`);
//! - port: 1 to 65535; without one, 80 for `http` and 443 for `https`;
//! - path as written, `/` when there is none; the query after `?` is kept
//!   and sent with the path (remote-write receivers may take parameters);
//! - a fragment after `#` is dropped: HTTP never sends it.
//!
//! What is refused:
//! - credentials before the host (`user:password@`): plans must not carry
//!   secrets, so the receiver's `auth` reads them from files instead;
//! - spaces and control characters anywhere: they would split the request
//!   line.
//!
//! Nothing is decoded (percent-escapes go on the wire as written) and nothing
//! allocates: a parsed URL borrows from its text.

use crate::plan::Scheme;
use core::fmt;
use core::net::Ipv6Addr;

/// A parsed `http(s)://host[:port][/path][?query]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Url<'a> {
    pub scheme: Scheme,
    /// `host[:port]` as written: the `Host` header.
    pub authority: &'a str,
    /// The host without brackets: `::1` for `[::1]`.
    pub host: &'a str,
    /// The port written, or the scheme's default.
    pub port: u16,
    /// `/` when the URL has no path.
    pub path: &'a str,
    /// The text after `?`, without it.
    pub query: Option<&'a str>,
}

/// A `host[:port]` authority: the host without brackets, the port if written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort<'a> {
    pub host: &'a str,
    pub port: Option<u16>,
}

/// Why a URL or authority was refused. No variant repeats credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError<'a> {
    /// It does not start with `http://` or `https://`.
    Scheme,
    /// A space or control character, at this byte offset.
    Whitespace(usize),
    /// `user[:password]@` before the host.
    Credentials,
    /// Nothing where the host belongs.
    NoHost,
    /// `[` without its `]`.
    UnclosedBracket,
    /// The text in brackets, which is not an IPv6 address.
    BadIpv6(&'a str),
    /// A host with a character no host name or IPv4 address has.
    BadHost(&'a str),
    /// What follows `]` when it is not `:port`.
    AfterBracket(&'a str),
    /// A port that is not a number from 1 to 65535.
    BadPort(&'a str),
}

impl fmt::Display for UrlError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Scheme => f.write_str("scheme must be http:// or https://"),
            UrlError::Whitespace(at) => write!(f, "a space or control character at byte {at}"),
            UrlError::Credentials => f.write_str(
                "credentials (user@ or user:password@) in the URL are refused: \
                 plans carry no secrets; the receiver's auth reads them from files",
            ),
            UrlError::NoHost => f.write_str("no host"),
            UrlError::UnclosedBracket => f.write_str("unclosed [ in IPv6 address"),
            UrlError::BadIpv6(h) => write!(f, "[{h}] is not an IPv6 address"),
            UrlError::BadHost(h) => write!(
                f,
                "host {h} may hold only ASCII letters, digits, '-', '.' and '_' (IPv6 addresses go in brackets)"
            ),
            UrlError::AfterBracket(rest) => {
                write!(f, "{rest} after the IPv6 address; only :port may follow it")
            }
            UrlError::BadPort("") => f.write_str("no port after ':'"),
            UrlError::BadPort(p) => write!(f, "bad port {p} (ports are 1 to 65535)"),
        }
    }
}

/// The port a URL of `scheme` uses when it names none.
pub const fn default_port(scheme: Scheme) -> u16 {
    match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    }
}

impl<'a> Url<'a> {
    pub fn parse(text: &'a str) -> Result<Url<'a>, UrlError<'a>> {
        if let Some(at) = text.bytes().position(|b| b <= b' ' || b == 0x7f) {
            return Err(UrlError::Whitespace(at));
        }
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(UrlError::Scheme);
        };
        let rest = rest.split('#').next().unwrap_or(rest);
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let HostPort { host, port } = parse_host_port(authority)?;
        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (tail, None),
        };
        Ok(Url {
            scheme,
            authority,
            host,
            port: port.unwrap_or(default_port(scheme)),
            path: if path.is_empty() { "/" } else { path },
            query,
        })
    }

    /// What the request line asks for: the path, then `?query` if any.
    pub fn request_target(&self) -> RequestTarget<'a> {
        RequestTarget {
            path: self.path,
            query: self.query,
        }
    }
}

/// A URL's path and query, written as the request line wants them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTarget<'a> {
    path: &'a str,
    query: Option<&'a str>,
}

impl fmt::Display for RequestTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path)?;
        if let Some(q) = self.query {
            f.write_str("?")?;
            f.write_str(q)?;
        }
        Ok(())
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`: a URL's authority without
/// credentials, or a scrape target.
pub fn parse_host_port(authority: &str) -> Result<HostPort<'_>, UrlError<'_>> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::UnclosedBracket)?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(UrlError::BadIpv6(host));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None => return Err(UrlError::AfterBracket(after)),
            },
        };
        return Ok(HostPort { host, port });
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, p)) => (host, Some(parse_port(p)?)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(UrlError::BadHost(host));
    }
    Ok(HostPort { host, port })
}

fn parse_port(text: &str) -> Result<u16, UrlError<'_>> {
    // Digits only: `str::parse` would also take a leading `+`.
    match text.parse::<u16>() {
        Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(UrlError::BadPort(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn url(
        scheme: Scheme,
        authority: &'static str,
        host: &'static str,
        port: u16,
        path: &'static str,
        query: Option<&'static str>,
    ) -> Url<'static> {
        Url {
            scheme,
            authority,
            host,
            port,
            path,
            query,
        }
    }

    #[test]
    fn http_and_https_with_and_without_ports() {
        use Scheme::{Http, Https};
        for (text, want) in [
            (
                "http://127.0.0.1:19090/api/v1/write",
                url(Http, "127.0.0.1:19090", "127.0.0.1", 19090, "/api/v1/write", None),
            ),
            (
                "https://thanos-receive.example.net:19291/api/v1/receive",
                url(
                    Https,
                    "thanos-receive.example.net:19291",
                    "thanos-receive.example.net",
                    19291,
                    "/api/v1/receive",
                    None,
                ),
            ),
            ("http://receive", url(Http, "receive", "receive", 80, "/", None)),
            (
                "https://receive/",
                url(Https, "receive", "receive", 443, "/", None),
            ),
            (
                "https://under_score.svc.cluster.local./x",
                url(
                    Https,
                    "under_score.svc.cluster.local.",
                    "under_score.svc.cluster.local.",
                    443,
                    "/x",
                    None,
                ),
            ),
        ] {
            assert_eq!(Url::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn ipv6_literals_lose_their_brackets_but_not_their_authority() {
        use Scheme::{Http, Https};
        assert_eq!(
            Url::parse("https://[::1]/receive"),
            Ok(url(Https, "[::1]", "::1", 443, "/receive", None))
        );
        assert_eq!(
            Url::parse("http://[2001:db8::7]:9090/w"),
            Ok(url(Http, "[2001:db8::7]:9090", "2001:db8::7", 9090, "/w", None))
        );
        assert_eq!(
            Url::parse("http://[::ffff:10.0.0.1]"),
            Ok(url(Http, "[::ffff:10.0.0.1]", "::ffff:10.0.0.1", 80, "/", None))
        );
        assert_eq!(Url::parse("http://[::1/x"), Err(UrlError::UnclosedBracket));
        assert_eq!(Url::parse("http://[nope]/x"), Err(UrlError::BadIpv6("nope")));
        assert_eq!(
            Url::parse("http://[::1]9090/x"),
            Err(UrlError::AfterBracket("9090"))
        );
        assert_eq!(
            Url::parse("http://::1:9090/x"),
            Err(UrlError::BadHost("::1")),
            "an IPv6 address without brackets is ambiguous"
        );
    }

    #[test]
    fn query_is_kept_for_the_request_and_fragment_dropped() {
        use Scheme::Http;
        let u = Url::parse("http://vm:8428/api/v1/write?extra_label=site=a&x=%2F#frag").unwrap();
        assert_eq!(
            u,
            url(
                Http,
                "vm:8428",
                "vm",
                8428,
                "/api/v1/write",
                Some("extra_label=site=a&x=%2F")
            )
        );
        assert_eq!(
            u.request_target().to_string(),
            "/api/v1/write?extra_label=site=a&x=%2F"
        );
        let u = Url::parse("http://vm?tenant=1").unwrap();
        assert_eq!(u, url(Http, "vm", "vm", 80, "/", Some("tenant=1")));
        assert_eq!(u.request_target().to_string(), "/?tenant=1");
        assert_eq!(
            Url::parse("http://vm/w#x?y")
                .unwrap()
                .request_target()
                .to_string(),
            "/w"
        );
        assert_eq!(
            Url::parse("http://vm/a@b").unwrap().path,
            "/a@b",
            "an @ in the path is no credential"
        );
    }

    #[test]
    fn credentials_are_refused_and_never_repeated() {
        for text in [
            "https://user@receive/api/v1/receive",
            "https://user:s3cret@receive:19291/api/v1/receive",
            "http://user:s3cret@[::1]:80",
            "http://user:s3cret@receive?x=1",
        ] {
            let e = Url::parse(text).unwrap_err();
            assert_eq!(e, UrlError::Credentials, "{text}");
            let shown = e.to_string();
            assert!(
                !shown.contains("s3cret") && shown.contains("credentials"),
                "{shown}"
            );
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        for (text, want, shown) in [
            ("ftp://x/", UrlError::Scheme, "scheme must be http:// or https://"),
            ("HTTP://x/", UrlError::Scheme, "scheme"),
            ("receive:19291/api", UrlError::Scheme, "scheme"),
            ("http://", UrlError::NoHost, "no host"),
            ("http://:9090/w", UrlError::NoHost, "no host"),
            (
                "http://x:abc/w",
                UrlError::BadPort("abc"),
                "bad port abc (ports are 1 to 65535)",
            ),
            ("http://x:0/w", UrlError::BadPort("0"), "bad port 0"),
            ("http://x:65536/w", UrlError::BadPort("65536"), "bad port 65536"),
            ("http://x:+80/w", UrlError::BadPort("+80"), "bad port +80"),
            ("http://x:/w", UrlError::BadPort(""), "no port after ':'"),
            ("http://a b/w", UrlError::Whitespace(8), "at byte 8"),
            ("http://x/w\n", UrlError::Whitespace(10), "control character"),
            (
                "http://ex%61mple/w",
                UrlError::BadHost("ex%61mple"),
                "host ex%61mple may hold only",
            ),
            ("http://grüße/w", UrlError::BadHost("grüße"), "ASCII letters"),
        ] {
            let e = Url::parse(text).unwrap_err();
            assert_eq!(e, want, "{text}");
            assert!(e.to_string().contains(shown), "{text}: {e}");
        }
    }

    #[test]
    fn targets_are_host_and_optional_port() {
        assert_eq!(
            parse_host_port("node:9100"),
            Ok(HostPort {
                host: "node",
                port: Some(9100)
            })
        );
        assert_eq!(
            parse_host_port("node"),
            Ok(HostPort {
                host: "node",
                port: None
            })
        );
        assert_eq!(
            parse_host_port("[fe80::1]:9100"),
            Ok(HostPort {
                host: "fe80::1",
                port: Some(9100)
            })
        );
        assert_eq!(parse_host_port("node:x"), Err(UrlError::BadPort("x")));
        assert_eq!(parse_host_port(""), Err(UrlError::NoHost));
        assert_eq!(
            parse_host_port("http://node:9100/metrics"),
            Err(UrlError::BadPort("9100/metrics"))
        );
        assert_eq!(
            parse_host_port("${NODE_IP}:9100"),
            Err(UrlError::BadHost("${NODE_IP}"))
        );
        assert_eq!(default_port(Scheme::Http), 80);
        assert_eq!(default_port(Scheme::Https), 443);
    }
}

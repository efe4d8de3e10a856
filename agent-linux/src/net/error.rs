//! Why an HTTP exchange failed. Each variant says which phase and which limit.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// The phase an exchange was in when it failed; names the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    /// Sending the request (for TLS this includes the handshake, which rustls runs underneath).
    Send,
    /// Waiting for or reading the status line and headers.
    Head,
    /// Reading the body.
    Body,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Send => "send request",
            Phase::Head => "read response head",
            Phase::Body => "read response body",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NetError {
    /// The TCP connect failed (refused, unreachable, ...).
    Connect {
        addr: SocketAddr,
        kind: io::ErrorKind,
        os_code: Option<i32>,
    },
    /// A socket read or write failed after the connection was up.
    Io {
        phase: Phase,
        kind: io::ErrorKind,
        os_code: Option<i32>,
    },
    /// The request's deadline passed; a slowloris peer ends here.
    Timeout { phase: Phase, timeout_ms: u64 },
    /// The TLS handshake failed (bad certificate, wrong name, peer wants a client cert, ...).
    TlsHandshake(rustls::Error),
    /// TLS failed after the handshake.
    Tls(rustls::Error),
    /// The peer closed the connection before the response was complete.
    ClosedEarly { phase: Phase },
    /// Status line and headers did not fit the head buffer.
    HeadTooLarge { limit: usize },
    /// The response is not valid HTTP/1.x.
    BadHttp { what: &'static str },
    /// The body on the wire (after de-chunking, before inflate) passed the request's `max_body_bytes`.
    BodyTooLarge { limit: u64 },
    /// The inflated body passed the request's `max_decoded_bytes` (gzip bomb defence).
    DecompressedTooLarge { limit: u64 },
    /// The gzip stream is corrupt or truncated.
    BadGzip { what: &'static str },
    /// A `Content-Encoding` other than gzip or identity.
    UnsupportedEncoding,
    /// A gzip body arrived on a connection that holds no gzip state (none
    /// was lent to it for this exchange).
    NoGzipState,
    /// The serialized request did not fit the connection's request buffer.
    RequestTooLarge { limit: usize },
    /// The request itself is unusable (e.g. CR/LF in a header value).
    BadRequest { what: &'static str },
    /// `start_request` was called while an exchange was in flight.
    Busy,
}

impl NetError {
    /// Short, stable name for counters (`reason="..."`) and log lines.
    pub fn reason(&self) -> &'static str {
        match self {
            NetError::Connect { .. } => "connect_failed",
            NetError::Io { .. } => "io_error",
            NetError::Timeout { .. } => "timeout",
            NetError::TlsHandshake(_) => "tls_handshake_failed",
            NetError::Tls(_) => "tls_error",
            NetError::ClosedEarly { .. } => "connection_closed",
            NetError::HeadTooLarge { .. } => "response_head_too_large",
            NetError::BadHttp { .. } => "bad_http",
            NetError::BodyTooLarge { .. } => "body_size_limit",
            NetError::DecompressedTooLarge { .. } => "decompressed_size_limit",
            NetError::BadGzip { .. } => "bad_gzip",
            NetError::UnsupportedEncoding => "unsupported_encoding",
            NetError::NoGzipState => "no_gzip_state",
            NetError::RequestTooLarge { .. } => "request_too_large",
            NetError::BadRequest { .. } => "bad_request",
            NetError::Busy => "busy",
        }
    }

    pub(crate) fn io(phase: Phase, e: &io::Error) -> NetError {
        NetError::Io {
            phase,
            kind: e.kind(),
            os_code: e.raw_os_error(),
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Connect { addr, kind, os_code } => {
                write!(f, "connect to {addr} failed: {}", OsError(*kind, *os_code))
            }
            NetError::Io { phase, kind, os_code } => {
                write!(f, "{}: {}", phase.as_str(), OsError(*kind, *os_code))
            }
            NetError::Timeout { phase, timeout_ms } => {
                write!(f, "timeout after {timeout_ms} ms during {}", phase.as_str())
            }
            NetError::TlsHandshake(e) => write!(f, "TLS handshake failed: {e}"),
            NetError::Tls(e) => write!(f, "TLS error: {e}"),
            NetError::ClosedEarly { phase } => {
                write!(f, "peer closed the connection during {}", phase.as_str())
            }
            NetError::HeadTooLarge { limit } => {
                write!(
                    f,
                    "response status line and headers exceed the head buffer ({limit} bytes)"
                )
            }
            NetError::BadHttp { what } => write!(f, "malformed HTTP response: {what}"),
            NetError::BodyTooLarge { limit } => {
                write!(f, "response body exceeds max_body_bytes ({limit} bytes)")
            }
            NetError::DecompressedTooLarge { limit } => {
                write!(f, "decompressed body exceeds max_decoded_bytes ({limit} bytes)")
            }
            NetError::BadGzip { what } => write!(f, "bad gzip body: {what}"),
            NetError::UnsupportedEncoding => {
                write!(f, "response Content-Encoding is neither gzip nor identity")
            }
            NetError::NoGzipState => {
                write!(f, "gzip body on a connection that holds no gzip state")
            }
            NetError::RequestTooLarge { limit } => {
                write!(f, "request does not fit the request buffer ({limit} bytes)")
            }
            NetError::BadRequest { what } => write!(f, "invalid request: {what}"),
            NetError::Busy => write!(f, "a request is already in flight on this connection"),
        }
    }
}

impl std::error::Error for NetError {}

/// `connection refused (os error 111)`: the kind's words and the errno.
/// Not `io::Error`'s own text (`Connection refused (os error 111)`), which
/// asks libc for the message in a new `String`: a target that refuses every
/// scrape would allocate on every one.
struct OsError(io::ErrorKind, Option<i32>);

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(code) => write!(f, "{} (os error {code})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A failed exchange: either the transport/HTTP layer, or the caller's body sink said stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure<E> {
    Net(NetError),
    Sink(E),
}

impl<E> From<NetError> for Failure<E> {
    fn from(e: NetError) -> Self {
        Failure::Net(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_are_told_by_kind_and_number() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let e = NetError::Connect {
            addr: "127.0.0.1:9".parse().unwrap(),
            kind: refused.kind(),
            os_code: refused.raw_os_error(),
        };
        let text = format!(
            "connect to 127.0.0.1:9 failed: connection refused (os error {})",
            libc::ECONNREFUSED
        );
        assert_eq!(e.to_string(), text);
        let reset = NetError::Io {
            phase: Phase::Body,
            kind: io::ErrorKind::ConnectionReset,
            os_code: None,
        };
        assert_eq!(reset.to_string(), "read response body: connection reset");
    }
}

//! The status line and headers: parsed with httparse once the buffer
//! holds all of them, kept inline in a `Copy` [`ResponseHead`].

use crate::net::error::{Failure, NetError};

/// Header count httparse may see; more is a malformed (or hostile) response.
const MAX_HEADERS: usize = 64;
const CONTENT_TYPE_CAP: usize = 96;

/// Status and the headers the agent acts on. `Copy` and inline so handing it out never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub content_length: Option<u64>,
    pub chunked: bool,
    pub gzip: bool,
    /// The peer said `Connection: close` (or spoke HTTP/1.0 without keep-alive).
    pub close: bool,
    /// `Retry-After` in seconds; the HTTP-date form is not parsed and gives `None`.
    pub retry_after_s: Option<u32>,
    /// `Date` in Unix seconds: when the peer's clock says it answered. Only
    /// the IMF-fixdate form every current server sends is read; the two
    /// obsolete forms give `None`.
    pub date_s: Option<i64>,
    content_type: [u8; CONTENT_TYPE_CAP],
    content_type_len: u8,
}

impl ResponseHead {
    pub(super) fn empty() -> Self {
        ResponseHead {
            status: 0,
            content_length: None,
            chunked: false,
            gzip: false,
            close: false,
            retry_after_s: None,
            date_s: None,
            content_type: [0; CONTENT_TYPE_CAP],
            content_type_len: 0,
        }
    }

    /// `Content-Type`, cut at 96 bytes (enough for any exposition format with its parameters).
    pub fn content_type(&self) -> &str {
        core::str::from_utf8(&self.content_type[..self.content_type_len as usize]).unwrap_or("")
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// `Some((head length, head, encoding understood))` once the buffer holds a whole head.
pub(super) fn parse_head<E>(buf: &[u8]) -> Result<Option<(usize, ResponseHead, bool)>, Failure<E>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let parsed = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(NetError::BadHttp {
                what: httparse_what(e),
            }
            .into())
        }
    };
    let version = resp.version.unwrap_or(1);
    let mut head = ResponseHead::empty();
    head.status = resp.code.unwrap_or(0);
    head.close = version == 0;
    let mut encoding_ok = true;
    for h in resp.headers.iter() {
        let name = h.name;
        let value = trim(h.value);
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(value).ok_or(NetError::BadHttp {
                what: "invalid Content-Length",
            })?;
            if head.content_length.is_some_and(|old| old != n) {
                return Err(NetError::BadHttp {
                    what: "conflicting Content-Length headers",
                }
                .into());
            }
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only "chunked" as the final coding is something we can frame.
            for coding in value.split(|&b| b == b',') {
                let coding = trim(coding);
                if coding.eq_ignore_ascii_case(b"chunked") {
                    head.chunked = true;
                } else if !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity") {
                    return Err(NetError::BadHttp {
                        what: "unsupported Transfer-Encoding",
                    }
                    .into());
                }
            }
        } else if name.eq_ignore_ascii_case("content-encoding") {
            for coding in value.split(|&b| b == b',') {
                let coding = trim(coding);
                if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                    // gzip twice would need two inflaters; refuse rather than mis-decode.
                    if head.gzip {
                        encoding_ok = false;
                    }
                    head.gzip = true;
                } else if !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity") {
                    encoding_ok = false;
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    head.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    head.close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            let n = value.len().min(CONTENT_TYPE_CAP);
            // Cut at a char boundary so content_type() stays valid UTF-8.
            let n = match core::str::from_utf8(&value[..n]) {
                Ok(_) => n,
                Err(e) => e.valid_up_to(),
            };
            head.content_type[..n].copy_from_slice(&value[..n]);
            head.content_type_len = n as u8;
        } else if name.eq_ignore_ascii_case("retry-after") {
            head.retry_after_s = parse_decimal(value).map(|s| s.min(u64::from(u32::MAX)) as u32);
        } else if name.eq_ignore_ascii_case("date") {
            head.date_s = parse_imf_fixdate(value);
        }
    }
    Ok(Some((parsed, head, encoding_ok)))
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110's IMF-fixdate) as Unix
/// seconds. The weekday is not checked against the date: it adds nothing.
fn parse_imf_fixdate(v: &[u8]) -> Option<i64> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
    ];
    let v: &[u8; 29] = v.try_into().ok()?;
    if &v[3..5] != b", " || v[7] != b' ' || v[11] != b' ' || v[16] != b' ' || &v[25..] != b" GMT" {
        return None;
    }
    if v[19] != b':' || v[22] != b':' {
        return None;
    }
    let num = |at: usize, len: usize| -> Option<i64> {
        v[at..at + len].iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let day = num(5, 2)?;
    let month = MONTHS.iter().position(|m| &v[8..11] == *m)? as i64 + 1;
    let year = num(12, 4)?;
    let (hour, minute, second) = (num(17, 2)?, num(20, 2)?, num(23, 2)?);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn httparse_what(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status code",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "more than 64 headers",
        httparse::Error::Version => "not HTTP/1.x",
    }
}

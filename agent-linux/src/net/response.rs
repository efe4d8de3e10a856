//! Sans-IO HTTP/1.1 response reader: head (httparse), body framing (Content-Length, chunked,
//! until close) and bounded gzip inflate. Bytes go in via [`ResponseParser::feed`], the decoded
//! body comes out through the caller's sink. No socket and no clock here, so it can be fuzzed.
//!
//! Every buffer is allocated in [`ResponseParser::new`] and reused for every response.

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use super::error::{Failure, NetError};

/// Header count httparse may see; more is a malformed (or hostile) response.
const MAX_HEADERS: usize = 64;
/// A chunk-size line (hex size plus extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 256;
/// Trailer section after the last chunk, in bytes.
const MAX_TRAILER: usize = 4096;
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
    fn empty() -> Self {
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

/// Where the decoded body goes, piece by piece, with the response head. Returning `Err` stops
/// the exchange (e.g. the exposition parser hit `sample_limit`).
pub type BodySink<'a, E> = dyn FnMut(&ResponseHead, &[u8]) -> Result<(), E> + 'a;

/// Per-response bounds, given with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Body bytes on the wire after de-chunking (compressed size for gzip).
    pub max_body_bytes: u64,
    /// Body bytes handed to the sink (after inflate).
    pub max_decoded_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex size line; `size` so far, `line_len` bytes seen, `in_ext` past a ';'.
    Size {
        size: u64,
        digits: u8,
        line_len: usize,
        in_ext: bool,
        saw_cr: bool,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// After the zero chunk: trailer lines until an empty one. `line_len` of the current line.
    Trailer {
        line_len: usize,
        total: usize,
        saw_cr: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body,
    Done,
    Failed,
}

/// Result of one [`ResponseParser::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// All input was used; more is needed.
    NeedMore,
    /// The response is complete; `consumed` bytes of this input belonged to it.
    Done { consumed: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gz {
    /// Fixed 10-byte header; `pos` bytes seen, `flags` from byte 3.
    Fixed {
        pos: u8,
        flags: u8,
    },
    ExtraLen {
        pos: u8,
        len: u16,
        flags: u8,
    },
    Extra {
        left: u16,
        flags: u8,
    },
    Name {
        flags: u8,
    },
    Comment {
        flags: u8,
    },
    HeaderCrc {
        pos: u8,
    },
    Deflate,
    Trailer {
        pos: u8,
    },
    /// A member ended; more bytes start another member (concatenated gzip is legal).
    MemberEnd,
}

const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

struct Gunzip {
    state: Gz,
    inflater: Box<InflateState>,
    out: Box<[u8]>,
    crc: crc32fast::Hasher,
    member_len: u32,
    trailer: [u8; 8],
}

impl Gunzip {
    fn new(out_bytes: usize) -> Self {
        Gunzip {
            state: Gz::Fixed { pos: 0, flags: 0 },
            inflater: InflateState::new_boxed(DataFormat::Raw),
            out: vec![0u8; out_bytes.max(64)].into_boxed_slice(),
            crc: crc32fast::Hasher::new(),
            member_len: 0,
            trailer: [0; 8],
        }
    }

    fn reset(&mut self) {
        self.state = Gz::Fixed { pos: 0, flags: 0 };
        self.inflater.reset(DataFormat::Raw);
        self.crc = crc32fast::Hasher::new();
        self.member_len = 0;
    }

    fn finished(&self) -> bool {
        self.state == Gz::MemberEnd
    }

    fn after_header(flags: u8, from: u8) -> Gz {
        // Walk the optional fields in RFC 1952 order, starting after the one just finished.
        if from < FEXTRA && flags & FEXTRA != 0 {
            Gz::ExtraLen {
                pos: 0,
                len: 0,
                flags,
            }
        } else if from < FNAME && flags & FNAME != 0 {
            Gz::Name { flags }
        } else if from < FCOMMENT && flags & FCOMMENT != 0 {
            Gz::Comment { flags }
        } else if flags & FHCRC != 0 && from != FHCRC {
            Gz::HeaderCrc { pos: 0 }
        } else {
            Gz::Deflate
        }
    }

    /// Inflates `input` into the sink; `decoded` counts against `limit`.
    fn feed<E>(
        &mut self,
        mut input: &[u8],
        decoded: &mut u64,
        limit: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Failure<E>> {
        loop {
            match self.state {
                Gz::Deflate => {
                    let r = inflate(&mut self.inflater, input, &mut self.out, MZFlush::None);
                    input = &input[r.bytes_consumed..];
                    if r.bytes_written > 0 {
                        let produced = &self.out[..r.bytes_written];
                        let total = *decoded + r.bytes_written as u64;
                        if total > limit {
                            return Err(NetError::DecompressedTooLarge { limit }.into());
                        }
                        *decoded = total;
                        self.crc.update(produced);
                        self.member_len = self.member_len.wrapping_add(r.bytes_written as u32);
                        sink(produced).map_err(Failure::Sink)?;
                    }
                    match r.status {
                        Ok(MZStatus::StreamEnd) => self.state = Gz::Trailer { pos: 0 },
                        Ok(_) => {
                            // A full output buffer may hide more pending output even with no input left.
                            if r.bytes_written < self.out.len() && input.is_empty() {
                                return Ok(());
                            }
                            if r.bytes_consumed == 0 && r.bytes_written == 0 {
                                return Ok(());
                            }
                        }
                        Err(MZError::Buf) => return Ok(()),
                        Err(_) => {
                            return Err(NetError::BadGzip {
                                what: "invalid deflate data",
                            }
                            .into())
                        }
                    }
                }
                _ => {
                    let Some((&b, rest)) = input.split_first() else {
                        return Ok(());
                    };
                    input = rest;
                    self.header_byte(b)?;
                }
            }
        }
    }

    fn header_byte<E>(&mut self, b: u8) -> Result<(), Failure<E>> {
        self.state = match self.state {
            Gz::Fixed { pos, flags } => {
                let ok = match pos {
                    0 => b == 0x1f,
                    1 => b == 0x8b,
                    2 => b == 8,
                    3 => b & 0xe0 == 0,
                    _ => true,
                };
                if !ok {
                    return Err(NetError::BadGzip {
                        what: "bad gzip header",
                    }
                    .into());
                }
                let flags = if pos == 3 { b } else { flags };
                if pos == 9 {
                    Self::after_header(flags, 0)
                } else {
                    Gz::Fixed { pos: pos + 1, flags }
                }
            }
            Gz::ExtraLen { pos, len, flags } => {
                let len = len | (u16::from(b) << (8 * pos));
                if pos == 1 {
                    if len == 0 {
                        Self::after_header(flags, FEXTRA)
                    } else {
                        Gz::Extra { left: len, flags }
                    }
                } else {
                    Gz::ExtraLen { pos: 1, len, flags }
                }
            }
            Gz::Extra { left, flags } => {
                if left == 1 {
                    Self::after_header(flags, FEXTRA)
                } else {
                    Gz::Extra {
                        left: left - 1,
                        flags,
                    }
                }
            }
            Gz::Name { flags } => {
                if b == 0 {
                    Self::after_header(flags, FNAME)
                } else {
                    Gz::Name { flags }
                }
            }
            Gz::Comment { flags } => {
                if b == 0 {
                    Self::after_header(flags, FCOMMENT)
                } else {
                    Gz::Comment { flags }
                }
            }
            Gz::HeaderCrc { pos } => {
                if pos == 1 {
                    Gz::Deflate
                } else {
                    Gz::HeaderCrc { pos: 1 }
                }
            }
            Gz::Trailer { pos } => {
                self.trailer[pos as usize] = b;
                if pos == 7 {
                    let crc = u32::from_le_bytes([
                        self.trailer[0],
                        self.trailer[1],
                        self.trailer[2],
                        self.trailer[3],
                    ]);
                    let size = u32::from_le_bytes([
                        self.trailer[4],
                        self.trailer[5],
                        self.trailer[6],
                        self.trailer[7],
                    ]);
                    let actual = core::mem::take(&mut self.crc).finalize();
                    if crc != actual {
                        return Err(NetError::BadGzip {
                            what: "CRC32 mismatch",
                        }
                        .into());
                    }
                    if size != self.member_len {
                        return Err(NetError::BadGzip {
                            what: "length in trailer does not match",
                        }
                        .into());
                    }
                    Gz::MemberEnd
                } else {
                    Gz::Trailer { pos: pos + 1 }
                }
            }
            Gz::MemberEnd => {
                // Another member follows: start over and treat this byte as its first.
                self.reset();
                return self.header_byte(b);
            }
            Gz::Deflate => unreachable!("deflate bytes are handled by the inflater"),
        };
        Ok(())
    }
}

/// Reads one response at a time; [`ResponseParser::begin`] readies it for the next.
pub struct ResponseParser {
    head_buf: Box<[u8]>,
    head_len: usize,
    head: ResponseHead,
    state: State,
    framing: Framing,
    chunk: Chunk,
    limits: BodyLimits,
    /// Wire body bytes so far (de-chunked, still compressed).
    body_bytes: u64,
    /// Bytes handed to the sink so far.
    decoded_bytes: u64,
    gunzip: Gunzip,
    /// The request was HEAD, so no body follows whatever the headers say.
    head_request: bool,
    /// Response bytes seen since `begin`; lets the client tell "closed before any answer".
    seen: u64,
    sticky: Option<NetError>,
}

impl ResponseParser {
    /// `head_bytes` bounds the status line plus headers; `inflate_out_bytes` is the inflate
    /// window handed to the sink per call.
    pub fn new(head_bytes: usize, inflate_out_bytes: usize) -> Self {
        ResponseParser {
            head_buf: vec![0u8; head_bytes.max(64)].into_boxed_slice(),
            head_len: 0,
            head: ResponseHead::empty(),
            state: State::Head,
            framing: Framing::None,
            chunk: Chunk::Size {
                size: 0,
                digits: 0,
                line_len: 0,
                in_ext: false,
                saw_cr: false,
            },
            limits: BodyLimits {
                max_body_bytes: 0,
                max_decoded_bytes: 0,
            },
            body_bytes: 0,
            decoded_bytes: 0,
            gunzip: Gunzip::new(inflate_out_bytes),
            head_request: false,
            seen: 0,
            sticky: None,
        }
    }

    /// Readies the parser for the response to a new request.
    pub fn begin(&mut self, limits: BodyLimits, head_request: bool) {
        self.head_len = 0;
        self.head = ResponseHead::empty();
        self.state = State::Head;
        self.framing = Framing::None;
        self.limits = limits;
        self.body_bytes = 0;
        self.decoded_bytes = 0;
        self.gunzip.reset();
        self.head_request = head_request;
        self.seen = 0;
        self.sticky = None;
    }

    /// The head, once it has been parsed.
    pub fn head(&self) -> Option<&ResponseHead> {
        match self.state {
            State::Body | State::Done => Some(&self.head),
            _ => None,
        }
    }

    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes the sink has been given for this response.
    pub fn decoded_bytes(&self) -> u64 {
        self.decoded_bytes
    }

    /// Feeds response bytes. The sink sees the head and each piece of decoded body.
    /// After an error every later call returns the same error.
    pub fn feed<E>(&mut self, input: &[u8], sink: &mut BodySink<'_, E>) -> Result<Feed, Failure<E>> {
        if let Some(e) = &self.sticky {
            return Err(Failure::Net(e.clone()));
        }
        let r = self.feed_inner(input, sink);
        if let Err(Failure::Net(e)) = &r {
            self.sticky = Some(e.clone());
        }
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// The peer closed the connection: ends an until-close body, otherwise an error.
    pub fn finish_at_eof<E>(&mut self) -> Result<(), Failure<E>> {
        match self.state {
            State::Done => Ok(()),
            State::Body if self.framing == Framing::UntilClose => {
                if self.head.gzip && !self.gunzip.finished() {
                    self.state = State::Failed;
                    return Err(NetError::BadGzip {
                        what: "body ended inside the gzip stream",
                    }
                    .into());
                }
                self.state = State::Done;
                Ok(())
            }
            State::Failed => Err(Failure::Net(self.sticky.clone().unwrap_or(NetError::BadHttp {
                what: "response failed earlier",
            }))),
            State::Head => {
                self.state = State::Failed;
                Err(NetError::ClosedEarly {
                    phase: super::Phase::Head,
                }
                .into())
            }
            State::Body => {
                self.state = State::Failed;
                Err(NetError::ClosedEarly {
                    phase: super::Phase::Body,
                }
                .into())
            }
        }
    }

    fn feed_inner<E>(&mut self, input: &[u8], sink: &mut BodySink<'_, E>) -> Result<Feed, Failure<E>> {
        let mut pos = 0;
        while pos < input.len() || self.state == State::Body && self.framing == Framing::None {
            match self.state {
                State::Head => {
                    let used = self.feed_head(&input[pos..])?;
                    pos += used;
                    if self.state == State::Head {
                        debug_assert_eq!(pos, input.len());
                        break;
                    }
                }
                State::Body => {
                    pos += self.feed_body(&input[pos..], sink)?;
                }
                State::Done => break,
                State::Failed => {
                    return Err(NetError::BadHttp {
                        what: "response failed earlier",
                    }
                    .into())
                }
            }
            if self.state == State::Done {
                break;
            }
        }
        self.seen += pos as u64;
        if self.state == State::Done {
            Ok(Feed::Done { consumed: pos })
        } else {
            Ok(Feed::NeedMore)
        }
    }

    /// Copies head bytes in, tries httparse; returns how many input bytes belong to the head.
    fn feed_head<E>(&mut self, input: &[u8]) -> Result<usize, Failure<E>> {
        let room = self.head_buf.len() - self.head_len;
        let take = input.len().min(room);
        let before = self.head_len;
        self.head_buf[before..before + take].copy_from_slice(&input[..take]);
        self.head_len += take;

        loop {
            let (parsed, head, encoding_ok) = match self.parse_head()? {
                Some(p) => p,
                None => {
                    if self.head_len == self.head_buf.len() {
                        return Err(NetError::HeadTooLarge {
                            limit: self.head_buf.len(),
                        }
                        .into());
                    }
                    return Ok(take);
                }
            };
            if (100..200).contains(&head.status) {
                // An interim response (100 Continue): drop it, the real head follows.
                self.head_buf.copy_within(parsed..self.head_len, 0);
                self.head_len -= parsed;
                continue;
            }
            // The buffer held only a partial head before this call, so whatever follows the
            // head came from this input and is body: hand it back as unconsumed.
            let excess = self.head_len - parsed;
            if !encoding_ok {
                return Err(NetError::UnsupportedEncoding.into());
            }
            self.start_body(head)?;
            return Ok(take - excess);
        }
    }

    fn start_body<E>(&mut self, head: ResponseHead) -> Result<(), Failure<E>> {
        let status = head.status;
        self.head = head;
        self.framing = if self.head_request || status == 204 || status == 304 {
            Framing::None
        } else if head.chunked {
            Framing::Chunked
        } else if let Some(n) = head.content_length {
            if n > self.limits.max_body_bytes {
                return Err(NetError::BodyTooLarge {
                    limit: self.limits.max_body_bytes,
                }
                .into());
            }
            if n == 0 {
                Framing::None
            } else {
                Framing::Length(n)
            }
        } else {
            self.head.close = true;
            Framing::UntilClose
        };
        self.chunk = Chunk::Size {
            size: 0,
            digits: 0,
            line_len: 0,
            in_ext: false,
            saw_cr: false,
        };
        self.state = State::Body;
        Ok(())
    }

    /// `Some((head length, head, encoding understood))` once the buffer holds a whole head.
    fn parse_head<E>(&mut self) -> Result<Option<(usize, ResponseHead, bool)>, Failure<E>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let parsed = match resp.parse(&self.head_buf[..self.head_len]) {
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

    fn count_body<E>(&mut self, n: usize) -> Result<(), Failure<E>> {
        self.body_bytes += n as u64;
        if self.body_bytes > self.limits.max_body_bytes {
            return Err(NetError::BodyTooLarge {
                limit: self.limits.max_body_bytes,
            }
            .into());
        }
        Ok(())
    }

    /// Hands de-framed body bytes on: through the inflater for gzip, straight otherwise.
    fn deliver<E>(&mut self, data: &[u8], sink: &mut BodySink<'_, E>) -> Result<(), Failure<E>> {
        if data.is_empty() {
            return Ok(());
        }
        self.count_body(data.len())?;
        let head = self.head;
        if head.gzip {
            let limit = self.limits.max_decoded_bytes;
            let mut inner = |b: &[u8]| sink(&head, b);
            self.gunzip.feed(data, &mut self.decoded_bytes, limit, &mut inner)
        } else {
            let total = self.decoded_bytes + data.len() as u64;
            if total > self.limits.max_decoded_bytes {
                return Err(NetError::BodyTooLarge {
                    limit: self.limits.max_decoded_bytes,
                }
                .into());
            }
            self.decoded_bytes = total;
            sink(&head, data).map_err(Failure::Sink)
        }
    }

    fn end_body<E>(&mut self) -> Result<(), Failure<E>> {
        if self.head.gzip && self.body_bytes > 0 && !self.gunzip.finished() {
            return Err(NetError::BadGzip {
                what: "body ended inside the gzip stream",
            }
            .into());
        }
        self.state = State::Done;
        Ok(())
    }

    fn feed_body<E>(&mut self, input: &[u8], sink: &mut BodySink<'_, E>) -> Result<usize, Failure<E>> {
        match self.framing {
            Framing::None => {
                self.end_body()?;
                Ok(0)
            }
            Framing::UntilClose => {
                self.deliver(input, sink)?;
                Ok(input.len())
            }
            Framing::Length(total) => {
                let left = total - self.body_bytes;
                let n = (input.len() as u64).min(left) as usize;
                self.deliver(&input[..n], sink)?;
                if self.body_bytes == total {
                    self.end_body()?;
                }
                Ok(n)
            }
            Framing::Chunked => self.feed_chunked(input, sink),
        }
    }

    fn feed_chunked<E>(&mut self, input: &[u8], sink: &mut BodySink<'_, E>) -> Result<usize, Failure<E>> {
        let bad = |what| Failure::Net(NetError::BadHttp { what });
        let mut pos = 0;
        while pos < input.len() && self.state == State::Body {
            match self.chunk {
                Chunk::Data { left } => {
                    let n = ((input.len() - pos) as u64).min(left) as usize;
                    self.deliver(&input[pos..pos + n], sink)?;
                    pos += n;
                    let left = left - n as u64;
                    self.chunk = if left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { left }
                    };
                    continue;
                }
                Chunk::DataCr => {
                    if input[pos] != b'\r' {
                        return Err(bad("chunk data not followed by CRLF"));
                    }
                    self.chunk = Chunk::DataLf;
                }
                Chunk::DataLf => {
                    if input[pos] != b'\n' {
                        return Err(bad("chunk data not followed by CRLF"));
                    }
                    self.chunk = Chunk::Size {
                        size: 0,
                        digits: 0,
                        line_len: 0,
                        in_ext: false,
                        saw_cr: false,
                    };
                }
                Chunk::Size {
                    size,
                    digits,
                    line_len,
                    in_ext,
                    saw_cr,
                } => {
                    let b = input[pos];
                    let line_len = line_len + 1;
                    if line_len > MAX_CHUNK_LINE {
                        return Err(bad("chunk size line too long"));
                    }
                    if saw_cr {
                        if b != b'\n' {
                            return Err(bad("chunk size line without LF"));
                        }
                        if digits == 0 {
                            return Err(bad("chunk size missing"));
                        }
                        if size == 0 {
                            self.chunk = Chunk::Trailer {
                                line_len: 0,
                                total: 0,
                                saw_cr: false,
                            };
                        } else {
                            // Refuse early: a chunk that cannot fit the limit is not worth reading.
                            if self.body_bytes.saturating_add(size) > self.limits.max_body_bytes {
                                return Err(NetError::BodyTooLarge {
                                    limit: self.limits.max_body_bytes,
                                }
                                .into());
                            }
                            self.chunk = Chunk::Data { left: size };
                        }
                    } else if b == b'\r' {
                        self.chunk = Chunk::Size {
                            size,
                            digits,
                            line_len,
                            in_ext,
                            saw_cr: true,
                        };
                    } else if in_ext {
                        self.chunk = Chunk::Size {
                            size,
                            digits,
                            line_len,
                            in_ext,
                            saw_cr,
                        };
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        self.chunk = Chunk::Size {
                            size,
                            digits,
                            line_len,
                            in_ext: true,
                            saw_cr,
                        };
                    } else {
                        let d = (b as char).to_digit(16).ok_or(bad("invalid chunk size"))?;
                        if digits >= 15 {
                            return Err(bad("chunk size too large"));
                        }
                        let size = size << 4 | u64::from(d);
                        self.chunk = Chunk::Size {
                            size,
                            digits: digits + 1,
                            line_len,
                            in_ext,
                            saw_cr,
                        };
                    }
                }
                Chunk::Trailer {
                    line_len,
                    total,
                    saw_cr,
                } => {
                    let b = input[pos];
                    let total = total + 1;
                    if total > MAX_TRAILER {
                        return Err(bad("chunked trailer too long"));
                    }
                    if saw_cr {
                        if b != b'\n' {
                            return Err(bad("trailer line without LF"));
                        }
                        if line_len == 0 {
                            pos += 1;
                            self.end_body()?;
                            break;
                        }
                        self.chunk = Chunk::Trailer {
                            line_len: 0,
                            total,
                            saw_cr: false,
                        };
                    } else if b == b'\r' {
                        self.chunk = Chunk::Trailer {
                            line_len,
                            total,
                            saw_cr: true,
                        };
                    } else {
                        self.chunk = Chunk::Trailer {
                            line_len: line_len + 1,
                            total,
                            saw_cr,
                        };
                    }
                }
            }
            pos += 1;
        }
        Ok(pos)
    }
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
pub fn parse_imf_fixdate(v: &[u8]) -> Option<i64> {
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

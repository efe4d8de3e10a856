//! Sans-IO HTTP/1.1 response reader: head (httparse), body framing (Content-Length, chunked,
//! until close) and bounded gzip inflate. Bytes go in via [`ResponseParser::feed`], the decoded
//! body comes out through the caller's sink. No socket and no clock here, so it can be fuzzed.
//!
//! Every buffer is allocated in [`ResponseParser::new`] and reused for every response; the gzip
//! state may instead be lent for each exchange ([`ResponseParser::swap_gzip`]).

mod chunked;
mod gzip;
mod head;

use super::error::{Failure, NetError};
use chunked::{Chunk, Step};
pub use gzip::GzipState;
pub use head::ResponseHead;

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
    gunzip: GzipState,
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
        Self::with_gzip(head_bytes, GzipState::new(inflate_out_bytes))
    }

    /// As [`ResponseParser::new`], with `gzip` as its gzip state (perhaps none).
    pub fn with_gzip(head_bytes: usize, gzip: GzipState) -> Self {
        ResponseParser {
            head_buf: vec![0u8; head_bytes.max(64)].into_boxed_slice(),
            head_len: 0,
            head: ResponseHead::empty(),
            state: State::Head,
            framing: Framing::None,
            chunk: Chunk::new(),
            limits: BodyLimits {
                max_body_bytes: 0,
                max_decoded_bytes: 0,
            },
            body_bytes: 0,
            decoded_bytes: 0,
            gunzip: gzip,
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

    /// Exchanges its gzip state with `other`: how a state is lent for one
    /// exchange and taken back.
    pub fn swap_gzip(&mut self, other: &mut GzipState) {
        core::mem::swap(&mut self.gunzip, other);
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
            let (parsed, head, encoding_ok) = match head::parse_head(&self.head_buf[..self.head_len])? {
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
        self.chunk = Chunk::new();
        self.state = State::Body;
        Ok(())
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
            let Some(gunzip) = self.gunzip.get() else {
                // Lending gives every scrape a state before its request
                // goes out; a body that finds none fails by name.
                return Err(NetError::NoGzipState.into());
            };
            let mut inner = |b: &[u8]| sink(&head, b);
            gunzip.feed(data, &mut self.decoded_bytes, limit, &mut inner)
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
        let mut pos = 0;
        while pos < input.len() && self.state == State::Body {
            if let Chunk::Data { left } = self.chunk {
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
            let step = self
                .chunk
                .take(input[pos], self.body_bytes, self.limits.max_body_bytes)?;
            pos += 1;
            if step == Step::End {
                self.end_body()?;
            }
        }
        Ok(pos)
    }
}

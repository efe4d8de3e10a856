//! `Transfer-Encoding: chunked` (RFC 9112, section 7.1): hex size lines
//! (extensions skipped), data, CRLF, and after the zero-size chunk trailer
//! lines up to an empty one. Each line and the trailer section are bounded.

use crate::net::error::NetError;

/// A chunk-size line (hex size plus extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 256;
/// Trailer section after the last chunk, in bytes.
const MAX_TRAILER: usize = 4096;

/// Where the decoder is between two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Reading the hex size line: `size` so far from `digits` digits,
    /// `seen` bytes of the line (CR and LF included), `in_ext` past a `;`.
    Size {
        size: u64,
        digits: u8,
        seen: usize,
        in_ext: bool,
        line: Line,
    },
    /// Inside a chunk's data, `left` bytes to go.
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// After the zero chunk: trailer lines until an empty one, `total`
    /// bytes of them so far.
    Trailer {
        total: usize,
        line: Line,
    },
}

/// The end of a CRLF-terminated line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Line {
    /// Bytes before the CR.
    len: usize,
    saw_cr: bool,
}

enum LineByte {
    Content(u8),
    Cr,
    End,
}

impl Line {
    /// Takes one byte; after a CR only LF may come (`no_lf` otherwise).
    fn take(&mut self, b: u8, no_lf: &'static str) -> Result<LineByte, NetError> {
        if self.saw_cr {
            return match b {
                b'\n' => Ok(LineByte::End),
                _ => Err(NetError::BadHttp { what: no_lf }),
            };
        }
        if b == b'\r' {
            self.saw_cr = true;
            return Ok(LineByte::Cr);
        }
        self.len += 1;
        Ok(LineByte::Content(b))
    }
}

/// What a framing byte did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    More,
    /// The trailer's empty line: the body is complete.
    End,
}

impl Chunk {
    /// Before the first size line.
    pub(super) fn new() -> Chunk {
        Chunk::Size {
            size: 0,
            digits: 0,
            seen: 0,
            in_ext: false,
            line: Line::default(),
        }
    }

    /// Takes one byte of framing (anything but chunk data). `body_bytes`
    /// is what the body holds so far and `max_body_bytes` its bound: a
    /// chunk that cannot fit is refused before its data is read.
    pub(super) fn take(&mut self, b: u8, body_bytes: u64, max_body_bytes: u64) -> Result<Step, NetError> {
        let bad = |what| NetError::BadHttp { what };
        match self {
            Chunk::Data { .. } => unreachable!("chunk data is delivered, not framed"),
            Chunk::DataCr if b == b'\r' => *self = Chunk::DataLf,
            Chunk::DataLf if b == b'\n' => *self = Chunk::new(),
            Chunk::DataCr | Chunk::DataLf => return Err(bad("chunk data not followed by CRLF")),
            Chunk::Size {
                size,
                digits,
                seen,
                in_ext,
                line,
            } => {
                *seen += 1;
                if *seen > MAX_CHUNK_LINE {
                    return Err(bad("chunk size line too long"));
                }
                match line.take(b, "chunk size line without LF")? {
                    LineByte::Cr => {}
                    LineByte::End if *digits == 0 => return Err(bad("chunk size missing")),
                    LineByte::End if *size == 0 => {
                        *self = Chunk::Trailer {
                            total: 0,
                            line: Line::default(),
                        }
                    }
                    LineByte::End => {
                        if body_bytes.saturating_add(*size) > max_body_bytes {
                            return Err(NetError::BodyTooLarge {
                                limit: max_body_bytes,
                            });
                        }
                        *self = Chunk::Data { left: *size };
                    }
                    LineByte::Content(_) if *in_ext => {}
                    LineByte::Content(b';' | b' ' | b'\t') => *in_ext = true,
                    LineByte::Content(c) => {
                        let d = (c as char).to_digit(16).ok_or(bad("invalid chunk size"))?;
                        if *digits >= 15 {
                            return Err(bad("chunk size too large"));
                        }
                        *size = *size << 4 | u64::from(d);
                        *digits += 1;
                    }
                }
            }
            Chunk::Trailer { total, line } => {
                *total += 1;
                if *total > MAX_TRAILER {
                    return Err(bad("chunked trailer too long"));
                }
                match line.take(b, "trailer line without LF")? {
                    LineByte::End if line.len == 0 => return Ok(Step::End),
                    LineByte::End => *line = Line::default(),
                    LineByte::Cr | LineByte::Content(_) => {}
                }
            }
        }
        Ok(Step::More)
    }
}

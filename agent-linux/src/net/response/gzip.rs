//! Bounded gzip inflate of a response body (RFC 1952): the header walked
//! byte by byte, the deflate data through miniz_oxide into one reused
//! output buffer, the trailer's CRC32 and length checked. Concatenated
//! members are read one after the other.

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use crate::net::error::{Failure, NetError};

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

/// A connection's gzip state: its own, one lent to it for an exchange
/// ([`crate::net::HttpClientConn::swap_gzip`]), or none. Lending is a swap
/// of two of these: no allocation.
pub struct GzipState(Option<Gunzip>);

impl GzipState {
    /// The inflate state and an output buffer of `out_bytes` (the piece
    /// handed to the sink per call), allocated now.
    pub fn new(out_bytes: usize) -> Self {
        GzipState(Some(Gunzip::new(out_bytes)))
    }

    /// No state, and no allocation: a gzip body fails until one is lent.
    pub const fn none() -> Self {
        GzipState(None)
    }

    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    pub(super) fn get(&mut self) -> Option<&mut Gunzip> {
        self.0.as_mut()
    }

    pub(super) fn reset(&mut self) {
        if let Some(g) = &mut self.0 {
            g.reset();
        }
    }

    /// The stream ended at a member's end (never, without a state).
    pub(super) fn finished(&self) -> bool {
        self.0.as_ref().is_some_and(Gunzip::finished)
    }
}

pub(super) struct Gunzip {
    state: Gz,
    inflater: Box<InflateState>,
    out: Box<[u8]>,
    crc: crc32fast::Hasher,
    member_len: u32,
    trailer: [u8; 8],
}

impl Gunzip {
    pub(super) fn new(out_bytes: usize) -> Self {
        Gunzip {
            state: Gz::Fixed { pos: 0, flags: 0 },
            inflater: InflateState::new_boxed(DataFormat::Raw),
            out: vec![0u8; out_bytes.max(64)].into_boxed_slice(),
            crc: crc32fast::Hasher::new(),
            member_len: 0,
            trailer: [0; 8],
        }
    }

    pub(super) fn reset(&mut self) {
        self.state = Gz::Fixed { pos: 0, flags: 0 };
        self.inflater.reset(DataFormat::Raw);
        self.crc = crc32fast::Hasher::new();
        self.member_len = 0;
    }

    pub(super) fn finished(&self) -> bool {
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
    pub(super) fn feed<E>(
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

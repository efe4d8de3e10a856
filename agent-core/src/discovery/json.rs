//! Splits a Kubernetes response body into the JSON objects it carries, as the bytes arrive,
//! holding at most one object.
//!
//! A list (`{"kind":"PodList","metadata":{...},"items":[{...},...]}`) comes out as its
//! `metadata` object and then each item; a watch (one `{"type":...,"object":...}` after
//! another, as the API server streams them) comes out event by event. Only the structure is
//! scanned here (strings, escapes, nesting); decoding an object is the caller's, on the bytes
//! handed out. An object larger than the bound is not kept: it comes out as
//! [`Part::Oversized`] once it ends, and the stream goes on.

use alloc::vec::Vec;
use core::fmt;

/// What the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A list response: its `metadata` and each of its `items`.
    List,
    /// A watch response: a stream of top-level objects.
    Watch,
}

/// One piece of the body.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// A list's `metadata` object.
    ListMeta(&'a [u8]),
    /// A list item or a watch event, whole.
    Object(&'a [u8]),
    /// An object larger than the bound ended; it was `bytes` long.
    Oversized { bytes: u64 },
}

/// The body is not what a list or watch response looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    /// Body bytes read before the fault.
    pub at: u64,
    pub reason: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "response body at byte {}: {}", self.at, self.reason)
    }
}

/// Which key of the top-level object is being read (list framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Metadata,
    Items,
    Other,
}

/// Nesting deeper than this is refused: Kubernetes objects nest a dozen levels.
const MAX_DEPTH: u32 = 64;
/// Longest top-level key remembered; the two that matter are shorter.
const KEY_BYTES: usize = 8;

pub struct JsonSplitter {
    framing: Framing,
    max_object_bytes: usize,
    /// The object being captured.
    buf: Vec<u8>,
    /// Nesting depth where the captured object started, while capturing.
    capture_at: Option<u32>,
    /// The captured object outgrew the bound: its length, counted on.
    oversized: Option<u64>,
    /// What the captured object is.
    capture_is_meta: bool,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// At depth 1 (list framing): reading a key (not yet past its `:`).
    in_key: bool,
    key: [u8; KEY_BYTES],
    key_len: usize,
    key_overflow: bool,
    current_key: Key,
    seen: u64,
    sticky: Option<JsonError>,
}

impl JsonSplitter {
    /// Allocates the object buffer once, `max_object_bytes` long.
    pub fn new(max_object_bytes: usize) -> Self {
        JsonSplitter {
            framing: Framing::Watch,
            max_object_bytes,
            buf: Vec::with_capacity(max_object_bytes),
            capture_at: None,
            oversized: None,
            capture_is_meta: false,
            depth: 0,
            in_string: false,
            escaped: false,
            in_key: true,
            key: [0; KEY_BYTES],
            key_len: 0,
            key_overflow: false,
            current_key: Key::Other,
            seen: 0,
            sticky: None,
        }
    }

    /// Readies the splitter for a new body.
    pub fn begin(&mut self, framing: Framing) {
        let max = self.max_object_bytes;
        let buf = core::mem::take(&mut self.buf);
        *self = JsonSplitter {
            buf,
            ..JsonSplitter::new(0)
        };
        self.max_object_bytes = max;
        self.buf.clear();
        self.framing = framing;
    }

    /// Bytes held for an unfinished object.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The body ended: anything unfinished is an error.
    pub fn finish(&mut self) -> Result<(), JsonError> {
        if let Some(e) = self.sticky {
            return Err(e);
        }
        if self.depth != 0 || self.in_string {
            return Err(self.fail("the body ends inside an object"));
        }
        Ok(())
    }

    fn fail(&mut self, reason: &'static str) -> JsonError {
        let e = JsonError {
            at: self.seen,
            reason,
        };
        self.sticky = Some(e);
        e
    }

    /// Scans `input`, handing every object that completes in it to `out`.
    pub fn handle_bytes(&mut self, input: &[u8], out: &mut dyn FnMut(Part<'_>)) -> Result<(), JsonError> {
        if let Some(e) = self.sticky {
            return Err(e);
        }
        for &b in input {
            self.seen += 1;
            if self.capture_at.is_some() {
                self.keep(b);
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                } else if self.reading_key() {
                    self.push_key(b);
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.reading_key() {
                        self.key_len = 0;
                        self.key_overflow = false;
                    }
                }
                b'{' | b'[' => {
                    if self.depth >= MAX_DEPTH {
                        return Err(self.fail("objects nest too deep"));
                    }
                    if b == b'{' && self.capture_at.is_none() && self.starts_capture() {
                        self.capture_at = Some(self.depth);
                        self.capture_is_meta = self.framing == Framing::List && self.depth == 1;
                        self.buf.clear();
                        self.oversized = None;
                        self.keep(b);
                    }
                    if self.framing == Framing::Watch && self.depth == 0 && b == b'[' {
                        return Err(self.fail("a watch stream holds objects, not arrays"));
                    }
                    self.depth += 1;
                    if self.depth == 1 {
                        self.in_key = true;
                    }
                }
                b'}' | b']' => {
                    if self.depth == 0 {
                        return Err(self.fail("a closing bracket without an opening one"));
                    }
                    self.depth -= 1;
                    if self.capture_at == Some(self.depth) {
                        self.capture_at = None;
                        match self.oversized.take() {
                            Some(bytes) => out(Part::Oversized { bytes }),
                            None if self.capture_is_meta => out(Part::ListMeta(&self.buf)),
                            None => out(Part::Object(&self.buf)),
                        }
                        self.buf.clear();
                    }
                    if self.depth == 1 {
                        // A value of the top-level object ended.
                        self.in_key = false;
                    }
                }
                b':' if self.depth == 1 => {
                    self.in_key = false;
                    self.current_key = self.classify_key();
                }
                b',' if self.depth == 1 => self.in_key = true,
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ if self.depth == 0 => return Err(self.fail("text outside any object")),
                _ => {}
            }
        }
        Ok(())
    }

    fn reading_key(&self) -> bool {
        self.framing == Framing::List && self.depth == 1 && self.in_key
    }

    fn push_key(&mut self, b: u8) {
        if self.key_len < KEY_BYTES {
            self.key[self.key_len] = b;
            self.key_len += 1;
        } else {
            self.key_overflow = true;
        }
    }

    fn classify_key(&self) -> Key {
        match (&self.key[..self.key_len], self.key_overflow) {
            (b"metadata", false) => Key::Metadata,
            (b"items", false) => Key::Items,
            _ => Key::Other,
        }
    }

    /// A `{` here starts an object the caller wants.
    fn starts_capture(&self) -> bool {
        match self.framing {
            Framing::Watch => self.depth == 0,
            Framing::List => {
                (self.depth == 1 && self.current_key == Key::Metadata && !self.in_key)
                    || (self.depth == 2 && self.current_key == Key::Items)
            }
        }
    }

    fn keep(&mut self, b: u8) {
        match &mut self.oversized {
            Some(n) => *n += 1,
            None if self.buf.len() < self.max_object_bytes => self.buf.push(b),
            None => {
                self.oversized = Some(self.buf.len() as u64 + 1);
                self.buf.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;
    use std::format;

    fn split(framing: Framing, max: usize, body: &[u8], chunk: usize) -> Result<Vec<String>, JsonError> {
        let mut s = JsonSplitter::new(max);
        s.begin(framing);
        let mut parts = Vec::new();
        for piece in body.chunks(chunk.max(1)) {
            s.handle_bytes(piece, &mut |p| {
                parts.push(match p {
                    Part::ListMeta(b) => format!("meta {}", core::str::from_utf8(b).unwrap()),
                    Part::Object(b) => String::from(core::str::from_utf8(b).unwrap()),
                    Part::Oversized { bytes } => format!("oversized {bytes}"),
                })
            })?;
            assert!(s.pending_bytes() <= max);
        }
        s.finish()?;
        Ok(parts)
    }

    #[test]
    fn a_list_comes_out_as_its_metadata_and_items_in_any_chunking() {
        let body = br#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"42","continue":"x}"},"items":[{"metadata":{"name":"a{"}},{"metadata":{"name":"b\"}"}}]}"#;
        for chunk in [1, 2, 3, 7, body.len()] {
            assert_eq!(
                split(Framing::List, 1024, body, chunk).unwrap(),
                vec![
                    String::from(r#"meta {"resourceVersion":"42","continue":"x}"}"#),
                    String::from(r#"{"metadata":{"name":"a{"}}"#),
                    String::from(r#"{"metadata":{"name":"b\"}"}}"#),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn keys_named_like_the_wanted_ones_elsewhere_are_not_taken() {
        let body = br#"{"items2":[{"a":1}],"x":{"items":[{"b":2}]},"items":[],"metadatax":{"c":3}}"#;
        assert_eq!(split(Framing::List, 64, body, 5).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_watch_stream_comes_out_event_by_event() {
        let body = b"{\"type\":\"ADDED\",\"object\":{\"a\":[1,2]}}\n{\"type\":\"BOOKMARK\",\"object\":{}}\n";
        assert_eq!(
            split(Framing::Watch, 1024, body, 4).unwrap(),
            vec![
                String::from(r#"{"type":"ADDED","object":{"a":[1,2]}}"#),
                String::from(r#"{"type":"BOOKMARK","object":{}}"#),
            ]
        );
    }

    #[test]
    fn an_object_over_the_bound_is_skipped_and_the_stream_goes_on() {
        let big = format!(r#"{{"type":"ADDED","object":{{"x":"{}"}}}}"#, "y".repeat(100));
        let body = format!("{big}\n{{\"type\":\"DELETED\"}}");
        let parts = split(Framing::Watch, 32, body.as_bytes(), 9).unwrap();
        assert_eq!(
            parts,
            vec![
                format!("oversized {}", big.len()),
                String::from(r#"{"type":"DELETED"}"#)
            ]
        );
    }

    #[test]
    fn broken_bodies_are_refused_and_the_error_sticks() {
        assert_eq!(
            split(Framing::Watch, 64, b"{\"a\":1}}", 64).unwrap_err().reason,
            "a closing bracket without an opening one"
        );
        assert_eq!(
            split(Framing::Watch, 64, b"{\"a\":1", 64).unwrap_err().reason,
            "the body ends inside an object"
        );
        assert_eq!(
            split(Framing::Watch, 64, b"nope", 64).unwrap_err().reason,
            "text outside any object"
        );
        let mut s = JsonSplitter::new(8);
        s.begin(Framing::Watch);
        assert!(s.handle_bytes(b"x", &mut |_| {}).is_err());
        assert!(s.handle_bytes(b"{}", &mut |_| {}).is_err(), "sticky");
        s.begin(Framing::Watch);
        assert!(
            s.handle_bytes(b"{}", &mut |_| {}).is_ok(),
            "a new body starts clean"
        );
    }
}

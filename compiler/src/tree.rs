//! A view of the YAML document with the place of every node, so a
//! diagnostic can carry a path (keys and indices) and be turned into
//! `file:line:col` only when it is rendered. Scalars keep their text, which
//! `import` reads.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(key: &str) -> Seg {
        Seg::Key(key.to_string())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Seg {
        Seg::Index(i)
    }
}

/// A path into the document, e.g. `clusters[2].tenants[0].name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocPath(pub Vec<Seg>);

impl DocPath {
    pub fn root() -> DocPath {
        DocPath(Vec::new())
    }

    pub fn at(&self, seg: impl Into<Seg>) -> DocPath {
        let mut p = self.clone();
        p.0.push(seg.into());
        p
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Where a node sits in the source: 1-based line and column, byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
    pub offset: usize,
    pub len: usize,
}

impl Pos {
    pub fn from_location(loc: serde_saphyr::Location) -> Option<Pos> {
        if loc.line() == 0 {
            return None;
        }
        let span = loc.span();
        Some(Pos {
            line: loc.line(),
            column: loc.column(),
            offset: span.byte_offset().unwrap_or(span.offset()) as usize,
            len: span.byte_len().unwrap_or(span.len()) as usize,
        })
    }
}

#[derive(Debug, Clone)]
pub enum Node {
    Map(Vec<(Spanned<KeyText>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    /// The text as YAML gave it (numbers and booleans written out); `None` for null.
    Scalar(Option<String>),
}

/// A mapping key as text, whatever scalar type YAML gave it.
#[derive(Debug, Clone)]
pub struct KeyText(pub String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(Some(v.to_string())))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar(Some(String::from_utf8_lossy(v).into_owned())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar(None))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
                    let value = map.next_value::<Spanned<Node>>()?;
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// The document's root node with its place.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: Spanned<Node>,
}

impl Tree {
    /// The best place for `path`: the value if it is a scalar with a span,
    /// else its key; for a path that does not exist (a missing key), the
    /// deepest node that does. `on_key` asks for the key even for scalars.
    pub fn locate(&self, path: &DocPath, on_key: bool) -> Option<Pos> {
        let mut node = &self.root;
        let mut key_pos: Option<Pos> = None;
        let mut found_all = true;
        for seg in &path.0 {
            let next = match (&node.value, seg) {
                (Node::Map(entries), Seg::Key(k)) => {
                    entries.iter().find(|(key, _)| key.value.0 == *k).map(|(key, v)| {
                        key_pos = Pos::from_location(key.referenced);
                        v
                    })
                }
                (Node::Seq(items), Seg::Index(i)) => items.get(*i).inspect(|_| key_pos = None),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => {
                    found_all = false;
                    break;
                }
            }
        }
        let value_pos = Pos::from_location(node.referenced);
        let scalar_with_span = matches!(node.value, Node::Scalar(_)) && value_pos.is_some_and(|p| p.len > 0);
        if found_all && scalar_with_span && !on_key {
            return value_pos;
        }
        key_pos.or(value_pos)
    }
}

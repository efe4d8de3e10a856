//! A small YAML emitter for `serde_json::Value`, so manifests come out byte
//! for byte the same on every run: keys are sorted here, whatever map type
//! serde_json was built with, and a string is written plain only when no
//! YAML 1.1 or 1.2 reader could take it for anything but that string.

use serde_json::Value;
use std::fmt::Write;

/// One document, block style, lists at their key's indentation (as
/// `kubectl` prints them). The caller joins documents with `---`.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    if is_inline(value) {
        out.push_str(&scalar(value));
        out.push('\n');
    } else {
        write_block(&mut out, value, 0, false);
    }
    out
}

/// Several documents in one file, in the order given.
pub fn to_yaml_documents(values: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(v));
    }
    out
}

/// Scalars and empty collections fit on the line of their key or dash.
fn is_inline(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => true,
    }
}

/// Writes a non-empty map or list whose lines start at `indent`; with
/// `continues_line` the first line follows a `- ` already written.
fn write_block(out: &mut String, value: &Value, indent: usize, continues_line: bool) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 || !continues_line {
                    pad(out, indent);
                }
                out.push_str(&string(key));
                out.push(':');
                write_after_key(out, &map[key.as_str()], indent);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 || !continues_line {
                    pad(out, indent);
                }
                if is_inline(item) {
                    out.push_str("- ");
                    out.push_str(&scalar(item));
                    out.push('\n');
                } else {
                    out.push_str("- ");
                    write_block(out, item, indent + 2, true);
                }
            }
        }
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn write_after_key(out: &mut String, value: &Value, indent: usize) {
    if is_inline(value) {
        out.push(' ');
        out.push_str(&scalar(value));
        out.push('\n');
    } else {
        out.push('\n');
        let child_indent = if value.is_array() { indent } else { indent + 2 };
        write_block(out, value, child_indent, false);
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
    }
}

/// Plain when it starts with a letter or `/` and holds only letters, digits
/// and `._/-`, and is not a YAML 1.1 boolean or null; otherwise a
/// double-quoted JSON string, which every YAML reader accepts as is.
fn string(s: &str) -> String {
    const RESERVED: [&str; 9] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    let first_ok = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/');
    let rest_ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'));
    let reserved = RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s));
    if first_ok && rest_ok && !reserved {
        s.to_string()
    } else {
        let mut quoted = String::with_capacity(s.len() + 2);
        // serde_json's escapes (\" \\ \n \uXXXX) are all valid in YAML double quotes.
        write!(quoted, "{}", Value::String(s.to_string())).expect("writing to a String");
        quoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_maps_and_lists_use_block_style_with_sorted_keys() {
        let v = json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "spec": {
                "containers": [{"name": "a", "args": ["run", "--plan"], "ports": [{"containerPort": 9090}]}],
                "volumes": [],
                "nodeSelector": {}
            },
            "matrix": [[1, 2], []]
        });
        let expected = "\
apiVersion: v1
kind: Pod
matrix:
- - 1
  - 2
- []
spec:
  containers:
  - args:
    - run
    - \"--plan\"
    name: a
    ports:
    - containerPort: 9090
  nodeSelector: {}
  volumes: []
";
        assert_eq!(to_yaml(&v), expected);
    }

    #[test]
    fn strings_that_would_read_as_other_types_are_quoted() {
        for (s, out) in [
            ("true", "\"true\""),
            ("No", "\"No\""),
            ("y", "\"y\""),
            ("null", "\"null\""),
            ("9090", "\"9090\""),
            ("1.5", "\"1.5\""),
            ("", "\"\""),
            ("256Mi", "\"256Mi\""),
            ("a: b", "\"a: b\""),
            ("image:v1", "\"image:v1\""),
            ("#x", "\"#x\""),
            ("line\nbreak", "\"line\\nbreak\""),
            ("-", "\"-\""),
            ("monitoring-tenant-a", "monitoring-tenant-a"),
            ("/-/healthy", "/-/healthy"),
            ("app.kubernetes.io/name", "app.kubernetes.io/name"),
            ("Mi", "Mi"),
        ] {
            assert_eq!(string(s), out, "for {s:?}");
        }
    }

    #[test]
    fn output_reads_back_as_the_same_value() {
        let v = json!({
            "a": ["x", {"b": "true", "c": [{"d": "1", "e": null}], "f": 3}, [[]]],
            "quote\"d": "tab\there",
            "g": {"h": {"i": false}},
            "j": "ünïcode"
        });
        let text = to_yaml(&v);
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, v, "{text}");
    }

    #[test]
    fn documents_are_separated() {
        let text = to_yaml_documents(&[json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(text, "a: 1\n---\nb: 2\n");
    }
}

//! Manifests as YAML, written by serde-saphyr's serializer so the same
//! objects give the same bytes on every run.
//!
//! The objects arrive as `serde_json::Value`s (k8s-openapi objects and a few
//! literal ones), and map keys are written sorted, whatever map type
//! serde_json was built with: the order `kubectl get -o yaml` prints.
//! serde-saphyr writes a string plain unless a YAML 1.1 or 1.2 reader could
//! take it for something else (`"true"`, `"9090"`, `"y"`), then quoted.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use serde_saphyr::SerializerOptions;

/// One document, block style, lists at their key's indentation (as
/// `kubectl` prints them).
pub fn to_yaml(value: &Value) -> String {
    serde_saphyr::to_string_with_options(&SortedKeys(value), options())
        .expect("a JSON value always has a YAML form")
}

/// Several documents in one file, in the order given, separated by `---`.
pub fn to_yaml_documents(values: &[Value]) -> String {
    let docs: Vec<SortedKeys<'_>> = values.iter().map(SortedKeys).collect();
    serde_saphyr::to_string_multiple_with_options(&docs, options())
        .expect("a JSON value always has a YAML form")
}

fn options() -> SerializerOptions {
    serde_saphyr::ser_options! {
        // Plans travel as long base64 strings without spaces: a folded
        // block scalar would only split them over lines it cannot fold.
        prefer_block_scalars: false,
    }
}

/// Serializes a value with every map's keys in sorted order.
struct SortedKeys<'a>(&'a Value);

impl Serialize for SortedKeys<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by_key(|&(key, _)| key);
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &SortedKeys(value))?;
                }
                out.end()
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(SortedKeys)),
            scalar => scalar.serialize(serializer),
        }
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
    - --plan
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
            ("a: b", "\"a: b\""),
            ("#x", "\"#x\""),
            ("line\nbreak", "\"line\\nbreak\""),
            ("-", "'-'"),
            ("256Mi", "256Mi"),
            ("image:v1", "image:v1"),
            ("--plan", "--plan"),
            ("monitoring-tenant-a", "monitoring-tenant-a"),
            ("/-/healthy", "/-/healthy"),
            ("app.kubernetes.io/name", "app.kubernetes.io/name"),
            ("Mi", "Mi"),
        ] {
            assert_eq!(to_yaml(&Value::String(s.into())), format!("{out}\n"), "for {s:?}");
        }
    }

    #[test]
    fn output_reads_back_as_the_same_value() {
        let v = json!({
            "a": ["x", {"b": "true", "c": [{"d": "1", "e": null}], "f": 3}, [[]]],
            "quote\"d": "tab\there",
            "g": {"h": {"i": false}},
            "j": "ünïcode",
            "k": ["65534:65534", "0.0.0.0:9090", "--resources=a,b", "nodes=[tenant]", "1e3", "0x1f", "~"],
            "plan": "T1VUUE9TVAABAAAAnAIAAOoRkVYaCmNsdXN0ZXItMDMHY2x1c3Rlcghsb2NhdGlvbgtlZGdlLXNpdGUtMQRyb2xl+/=="
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

//! Node collectors: node_exporter-compatible metrics read from `/proc` and `/sys`.

//! Files of this repository that tests read: examples, golden plans and
//! manifests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A file of this repository, from its path relative to the workspace root.
pub fn repo_path(rel: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace");
    root.join(rel)
}

/// Every file under `dir` by its path relative to `dir`, with its contents;
/// the hand-written `README.md` at the top is not one of them.
pub fn golden_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                if rel != Path::new("README.md") {
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
    }
    out
}

//! The plan's string table.

use outpost_core::plan::StrId;
use std::collections::HashMap;

/// Strings numbered in first-use order; the builder walks the spec in a
/// fixed order, so the table is the same on every run.
#[derive(Default)]
pub(super) struct Interner {
    ids: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    pub(super) fn id(&mut self, s: &str) -> StrId {
        if let Some(id) = self.ids.get(s) {
            return StrId(*id);
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        StrId(id)
    }

    /// The string behind `id`, which this table gave out.
    pub(super) fn get(&self, id: StrId) -> &str {
        &self.strings[id.0 as usize]
    }

    pub(super) fn into_strings(self) -> Vec<String> {
        self.strings
    }
}

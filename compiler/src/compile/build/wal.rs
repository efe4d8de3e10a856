//! The plan's write-ahead log: directory, size, segment size, fsync policy
//! and mode (what is written: every record, or only what the receiver has
//! not taken in time). The node and cluster roles each have their own `wal`
//! section.

use super::clamp_u32;
use crate::compile::context::Cx;
use crate::compile::defaults::{
    default_ms, DEFAULT_FSYNC, DEFAULT_MAX_HELD, DEFAULT_NODE_MAX_HELD, DEFAULT_NODE_WAL_DIR,
    DEFAULT_NODE_WAL_MAX, DEFAULT_NODE_WAL_MODE, DEFAULT_SEGMENT, DEFAULT_SPILL_AFTER, DEFAULT_WAL_DIR,
    DEFAULT_WAL_MAX, DEFAULT_WAL_MODE,
};
use crate::compile::intern::Interner;
use crate::compile::layers::Unit;
use crate::diag::Diagnostic;
use crate::spec::{Settings, WalSpec};
use crate::tree::DocPath;
use crate::units::{format_size, parse_duration};
use outpost_core::plan::{self, Role};
use outpost_core::snappy::max_compressed_len;

impl<'a> Unit<'a> {
    pub(super) fn wal(&self, cx: &mut Cx, s: &mut Interner, role: Role, queue: &plan::Queue) -> plan::Wal {
        let batch_bytes = queue.max_batch_bytes;
        let (key, dir_default, max_default) = match role {
            Role::Node => ("node_wal", DEFAULT_NODE_WAL_DIR, DEFAULT_NODE_WAL_MAX),
            Role::Cluster => ("wal", DEFAULT_WAL_DIR, DEFAULT_WAL_MAX),
        };
        let get = |x: &'a Settings| -> Option<&'a WalSpec> {
            match role {
                Role::Node => x.node_wal.as_ref(),
                Role::Cluster => x.wal.as_ref(),
            }
        };
        let dir = match self.pick(|x| get(x).and_then(|w| w.dir.as_ref()), &[key, "dir"]) {
            Some((d, p)) => {
                cx.file_path(d, &p);
                d.as_str()
            }
            None => dir_default,
        };
        let (max_bytes, max_path) = cx.size_or(
            self.pick(|x| get(x).and_then(|w| w.max_size.as_ref()), &[key, "max_size"]),
            max_default,
        );
        let (segment, seg_path) = cx.size_or(
            self.pick(
                |x| get(x).and_then(|w| w.segment_size.as_ref()),
                &[key, "segment_size"],
            ),
            DEFAULT_SEGMENT,
        );
        // A segment holds at least one whole batch.
        let segment = if seg_path.is_none() {
            segment.max(u64::from(batch_bytes))
        } else {
            segment
        };
        if segment < u64::from(batch_bytes) || segment > max_bytes || segment > u64::from(u32::MAX) {
            let p = seg_path.or(max_path).unwrap_or_else(|| self.unit_path.clone());
            cx.push(
                Diagnostic::error(
                    "bad-wal-segment",
                    p,
                    format!(
                        "WAL segment size {} must hold one batch ({}) and fit in the WAL's max_size ({})",
                        format_size(segment),
                        format_size(u64::from(batch_bytes)),
                        format_size(max_bytes)
                    ),
                )
                .label("segment does not fit")
                .help("segments are the unit the WAL drops when full; keep them between the batch size and a fraction of max_size"),
            );
        }
        let fsync = match self.pick(|x| get(x).and_then(|w| w.fsync.as_ref()), &[key, "fsync"]) {
            Some((f, _)) if f == "always" => plan::Fsync::Always,
            Some((f, _)) if f == "never" => plan::Fsync::Never,
            Some((f, p)) => match parse_duration(f) {
                Ok(ms) => plan::Fsync::IntervalMs(clamp_u32(ms)),
                Err(_) => {
                    cx.push(
                        Diagnostic::error("bad-fsync", p, format!("`{f}` is not an fsync policy"))
                            .label("unknown policy")
                            .help("use `always`, `never`, or an interval such as `1s`"),
                    );
                    plan::Fsync::Always
                }
            },
            None => plan::Fsync::IntervalMs(default_ms(DEFAULT_FSYNC) as u32),
        };
        plan::Wal {
            dir: s.id(dir),
            max_bytes: max_bytes.max(1),
            segment_bytes: clamp_u32(segment),
            fsync,
            mode: self.wal_mode(cx, role, key, queue),
        }
    }

    /// `mode`, and in spill mode `spill_after` and `max_held_size`.
    fn wal_mode(&self, cx: &mut Cx, role: Role, key: &str, queue: &plan::Queue) -> plan::WalMode {
        let get = |x: &'a Settings| -> Option<&'a WalSpec> {
            match role {
                Role::Node => x.node_wal.as_ref(),
                Role::Cluster => x.wal.as_ref(),
            }
        };
        let (mode_default, held_default) = match role {
            Role::Node => (DEFAULT_NODE_WAL_MODE, DEFAULT_NODE_MAX_HELD),
            Role::Cluster => (DEFAULT_WAL_MODE, DEFAULT_MAX_HELD),
        };
        let picked = self.pick(|x| get(x).and_then(|w| w.mode.as_ref()), &[key, "mode"]);
        let spill = match picked {
            Some((m, _)) if m == "spill" => true,
            Some((m, _)) if m == "append" => false,
            Some((m, p)) => {
                cx.push(
                    Diagnostic::error("bad-wal-mode", p, format!("`{m}` is not a WAL mode"))
                        .label("unknown mode")
                        .help("use `spill` (write only what the receiver has not taken in time) or `append` (append every record before it is sent)"),
                );
                mode_default == "spill"
            }
            None => mode_default == "spill",
        };
        let after = self.pick(
            |x| get(x).and_then(|w| w.spill_after.as_ref()),
            &[key, "spill_after"],
        );
        let held = self.pick(
            |x| get(x).and_then(|w| w.max_held_size.as_ref()),
            &[key, "max_held_size"],
        );
        if !spill {
            for (_, p) in [after, held].into_iter().flatten() {
                cx.push(
                    Diagnostic::warning(
                        "wal-spill-unused",
                        p,
                        "this WAL appends every record (mode `append`), so spill settings do nothing",
                    )
                    .label("unused")
                    .help(format!("set `{key}.mode: spill` to use it, or remove it")),
                );
            }
            return plan::WalMode::Append;
        }
        let (after_ms, after_path) = cx.duration_or(after, DEFAULT_SPILL_AFTER);
        let (held_bytes, held_path) = cx.size_or(held, held_default);
        let deadline = u64::from(queue.batch_send_deadline_ms);
        let here = |p: Option<DocPath>| p.unwrap_or_else(|| self.unit_path.clone());
        if after_ms <= deadline {
            cx.push(
                Diagnostic::error(
                    "spill-before-send",
                    here(after_path),
                    format!(
                        "records wait up to `queue.batch_send_deadline` ({deadline} ms) before they are sent, so a spill window of {after_ms} ms writes every one"
                    ),
                )
                .label("not longer than the batch deadline")
                .help("give the receiver time to answer: a spill window of several batch deadlines (30s by default)"),
            );
        }
        let one_record = max_compressed_len(u64::from(queue.max_batch_bytes));
        // The default grows to one record when batches are larger than it holds; a size the
        // spec sets is checked as written.
        let held_bytes = match held_path {
            None => held_bytes.max(one_record),
            Some(_) => held_bytes,
        };
        if held_bytes < one_record || held_bytes > u64::from(u32::MAX) {
            cx.push(
                Diagnostic::error(
                    "bad-held-size",
                    here(held_path),
                    format!(
                        "{} of held records must hold one compressed batch ({}) and be at most 4Gi",
                        format_size(held_bytes),
                        format_size(one_record)
                    ),
                )
                .label("does not fit")
                .help("held records are counted in the worst-case memory; a few scrapes' worth is enough"),
            );
        }
        plan::WalMode::Spill(plan::Spill {
            after_ms: clamp_u32(after_ms),
            max_held_bytes: held_bytes.clamp(one_record, u64::from(u32::MAX)) as u32,
        })
    }
}

//! The plan's write-ahead log: directory, size, segment size and fsync
//! policy. The node and cluster roles each have their own `wal` section.

use super::clamp_u32;
use crate::compile::context::Cx;
use crate::compile::defaults::{
    default_ms, DEFAULT_FSYNC, DEFAULT_NODE_WAL_DIR, DEFAULT_NODE_WAL_MAX, DEFAULT_SEGMENT, DEFAULT_WAL_DIR,
    DEFAULT_WAL_MAX,
};
use crate::compile::intern::Interner;
use crate::compile::layers::Unit;
use crate::diag::Diagnostic;
use crate::spec::{Settings, WalSpec};
use crate::units::{format_size, parse_duration};
use outpost_core::plan::{self, Role};

impl<'a> Unit<'a> {
    pub(super) fn wal(&self, cx: &mut Cx, s: &mut Interner, role: Role, batch_bytes: u32) -> plan::Wal {
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
        }
    }
}

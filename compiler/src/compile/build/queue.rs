//! The plan's send queue: capacity, shards, batch size and deadline,
//! backoff and the oldest sample worth sending.

use super::clamp_u32;
use crate::compile::context::Cx;
use crate::compile::defaults::{
    DEFAULT_BATCH_SEND_DEADLINE, DEFAULT_CAPACITY, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_SAMPLES_PER_SEND,
    DEFAULT_MAX_SAMPLE_AGE, DEFAULT_MAX_SHARDS, DEFAULT_MIN_BACKOFF, DEFAULT_MIN_SHARDS,
    DEFAULT_SAMPLE_BYTES,
};
use crate::compile::layers::Unit;
use crate::diag::Diagnostic;
use crate::spec::QueueSpec;
use crate::tree::DocPath;
use crate::units::format_size;
use outpost_core::plan;

/// Where each queue setting that sizes memory was written, if it was: the
/// memory check points at the one to change.
#[derive(Default)]
pub(in crate::compile) struct QueuePaths {
    pub(in crate::compile) capacity: Option<DocPath>,
    pub(in crate::compile) min_shards: Option<DocPath>,
    pub(in crate::compile) max_shards: Option<DocPath>,
    pub(in crate::compile) max_samples_per_send: Option<DocPath>,
    pub(in crate::compile) max_batch_size: Option<DocPath>,
}

impl Unit<'_> {
    pub(super) fn queue(&self, cx: &mut Cx) -> (plan::Queue, QueuePaths) {
        let num = |key: &'static str, get: fn(&QueueSpec) -> Option<&u64>| {
            self.pick(move |x| x.queue.as_ref().and_then(get), &["queue", key])
        };
        let mut paths = QueuePaths::default();
        let int = |cx: &mut Cx,
                   v: Option<(&u64, DocPath)>,
                   default: u64,
                   min: u64,
                   max: u64,
                   what: &str,
                   slot: &mut Option<DocPath>| match v {
            Some((n, p)) => {
                *slot = Some(p.clone());
                cx.range(*n, min, max, &p, what)
                    .unwrap_or(default.clamp(min, max))
            }
            None => default,
        };
        let capacity = int(
            cx,
            num("capacity", |q| q.capacity.as_ref()),
            DEFAULT_CAPACITY,
            1,
            u64::from(u32::MAX),
            "capacity",
            &mut paths.capacity,
        );
        let min_shards = int(
            cx,
            num("min_shards", |q| q.min_shards.as_ref()),
            DEFAULT_MIN_SHARDS,
            1,
            u64::from(u16::MAX),
            "min_shards",
            &mut paths.min_shards,
        );
        let max_shards = int(
            cx,
            num("max_shards", |q| q.max_shards.as_ref()),
            DEFAULT_MAX_SHARDS,
            1,
            u64::from(u16::MAX),
            "max_shards",
            &mut paths.max_shards,
        );
        let per_send = int(
            cx,
            num("max_samples_per_send", |q| q.max_samples_per_send.as_ref()),
            DEFAULT_MAX_SAMPLES_PER_SEND,
            1,
            1_000_000,
            "max_samples_per_send",
            &mut paths.max_samples_per_send,
        );
        if min_shards > max_shards {
            let p = paths
                .min_shards
                .clone()
                .or(paths.max_shards.clone())
                .unwrap_or_else(|| self.unit_path.clone());
            cx.push(
                Diagnostic::error(
                    "min-over-max",
                    p,
                    format!("min_shards {min_shards} is more than max_shards {max_shards}"),
                )
                .label("min > max")
                .help(format!("set min_shards to at most {max_shards}")),
            );
        }
        let text = |key: &'static str, get: fn(&QueueSpec) -> Option<&String>| {
            self.pick(move |x| x.queue.as_ref().and_then(get), &["queue", key])
        };
        let (deadline, _) = cx.duration_or(
            text("batch_send_deadline", |q| q.batch_send_deadline.as_ref()),
            DEFAULT_BATCH_SEND_DEADLINE,
        );
        let (min_backoff, min_backoff_path) = cx.duration_or(
            text("min_backoff", |q| q.min_backoff.as_ref()),
            DEFAULT_MIN_BACKOFF,
        );
        let (max_backoff, _) = cx.duration_or(
            text("max_backoff", |q| q.max_backoff.as_ref()),
            DEFAULT_MAX_BACKOFF,
        );
        if min_backoff > max_backoff {
            let p = min_backoff_path.unwrap_or_else(|| self.unit_path.clone());
            cx.push(
                Diagnostic::error(
                    "min-over-max",
                    p,
                    format!("min_backoff {min_backoff}ms is more than max_backoff {max_backoff}ms"),
                )
                .label("min > max")
                .help("the backoff doubles from min_backoff up to max_backoff"),
            );
        }
        let (max_age, _) = cx.duration_or(
            text("max_sample_age", |q| q.max_sample_age.as_ref()),
            DEFAULT_MAX_SAMPLE_AGE,
        );
        let batch_bytes = match text("max_batch_size", |q| q.max_batch_size.as_ref()) {
            Some((text, p)) => {
                paths.max_batch_size = Some(p.clone());
                let v = cx.size(text, &p).unwrap_or(per_send * DEFAULT_SAMPLE_BYTES);
                if !(1024..=u64::from(u32::MAX)).contains(&v) {
                    cx.push(
                        Diagnostic::error(
                            "out-of-range",
                            p,
                            format!("max_batch_size is {v} bytes, outside 1Ki..4Gi"),
                        )
                        .label("out of range")
                        .help(format!(
                            "about {} B per sample fits most series: `{}`",
                            DEFAULT_SAMPLE_BYTES,
                            format_size(per_send * DEFAULT_SAMPLE_BYTES)
                        )),
                    );
                }
                v
            }
            None => per_send * DEFAULT_SAMPLE_BYTES,
        };
        (
            plan::Queue {
                capacity: clamp_u32(capacity),
                min_shards: min_shards.min(max_shards) as u16,
                max_shards: max_shards as u16,
                max_samples_per_send: clamp_u32(per_send),
                batch_send_deadline_ms: clamp_u32(deadline),
                min_backoff_ms: min_backoff.min(max_backoff).min(u64::from(u32::MAX)) as u32,
                max_backoff_ms: clamp_u32(max_backoff),
                max_batch_bytes: batch_bytes.clamp(1024, u64::from(u32::MAX)) as u32,
                max_sample_age_ms: max_age.max(1),
            },
            paths,
        )
    }
}

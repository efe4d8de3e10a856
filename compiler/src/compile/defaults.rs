//! What a spec gets when it leaves a key out. Durations, sizes and CPU are
//! written the way a user writes them in the spec, so docs/spec-reference.md
//! and these lines read the same.

use crate::units::{parse_cpu, parse_duration, parse_size};
use outpost_core::plan;

pub const DEFAULT_TENANT_HEADER: &str = "THANOS-TENANT";
pub const DEFAULT_SCRAPE_INTERVAL: &str = "30s";
pub const DEFAULT_SCRAPE_TIMEOUT: &str = "10s";
pub const DEFAULT_REMOTE_TIMEOUT: &str = "30s";
pub const DEFAULT_CAPACITY: u64 = 2500;
pub const DEFAULT_MIN_SHARDS: u64 = 1;
pub const DEFAULT_MAX_SHARDS: u64 = 4;
pub const DEFAULT_MAX_SAMPLES_PER_SEND: u64 = 2000;
pub const DEFAULT_BATCH_SEND_DEADLINE: &str = "5s";
pub const DEFAULT_MIN_BACKOFF: &str = "30ms";
pub const DEFAULT_MAX_BACKOFF: &str = "5s";
pub const DEFAULT_MAX_SAMPLE_AGE: &str = "2h";
/// Bytes budgeted per queued sample when `max_batch_size` is not given: a
/// sample with a dozen typical labels, uncompressed.
pub const DEFAULT_SAMPLE_BYTES: u64 = 200;
pub const DEFAULT_WAL_DIR: &str = "/var/lib/outpost/wal";
pub const DEFAULT_WAL_MAX: &str = "1Gi";
pub const DEFAULT_NODE_WAL_DIR: &str = "/var/lib/outpost/node-wal";
pub const DEFAULT_NODE_WAL_MAX: &str = "512Mi";
pub const DEFAULT_SEGMENT: &str = "8Mi";
pub const DEFAULT_FSYNC: &str = "1s";
pub const DEFAULT_BODY_SIZE: &str = "10Mi";
pub const DEFAULT_SAMPLES: u64 = 100_000;
// Prometheus has no label limits by default. Names and values have none
// here either (the largest the plan holds): what bounds their bytes is the
// series' line, at most a sixteenth of body_size (Limits::max_line_bytes).
// The label count keeps a bound far above any exporter's, because work on a
// label set grows with the square of its labels.
pub const DEFAULT_LABEL_COUNT: u64 = 1024;
pub const DEFAULT_LABEL_NAME_LENGTH: u64 = u16::MAX as u64;
pub const DEFAULT_LABEL_VALUE_LENGTH: u64 = u32::MAX as u64;
/// The card's budget for an edge agent.
pub const DEFAULT_CPU: &str = "200m";
pub const DEFAULT_MEMORY: &str = "256Mi";
pub const DEFAULT_NODE_JOB: &str = "node-exporter";
pub const SELF_JOB: &str = "outpost";
pub const NODE_VARS: [&str; 2] = ["${NODE_NAME}", "${NODE_IP}"];

pub fn default_limits() -> plan::Limits {
    plan::Limits {
        body_bytes: default_bytes(DEFAULT_BODY_SIZE) as u32,
        samples: DEFAULT_SAMPLES as u32,
        label_count: DEFAULT_LABEL_COUNT as u16,
        label_name_bytes: DEFAULT_LABEL_NAME_LENGTH as u16,
        label_value_bytes: DEFAULT_LABEL_VALUE_LENGTH as u32,
    }
}

/// A default duration in milliseconds. Every default parses (the test below
/// reads each one), so this never panics in a build that passed its tests.
pub(crate) fn default_ms(text: &str) -> u64 {
    parse_duration(text).expect("a built-in default duration")
}

/// A default size in bytes; see [`default_ms`].
pub(crate) fn default_bytes(text: &str) -> u64 {
    parse_size(text).expect("a built-in default size")
}

/// A default CPU quantity in millicores; see [`default_ms`].
pub(crate) fn default_millicores(text: &str) -> u32 {
    parse_cpu(text).expect("a built-in default CPU quantity")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses() {
        for d in [
            DEFAULT_SCRAPE_INTERVAL,
            DEFAULT_SCRAPE_TIMEOUT,
            DEFAULT_REMOTE_TIMEOUT,
            DEFAULT_BATCH_SEND_DEADLINE,
            DEFAULT_MIN_BACKOFF,
            DEFAULT_MAX_BACKOFF,
            DEFAULT_MAX_SAMPLE_AGE,
            DEFAULT_FSYNC,
        ] {
            assert!(parse_duration(d).is_ok_and(|ms| ms > 0), "{d}");
        }
        for s in [
            DEFAULT_WAL_MAX,
            DEFAULT_NODE_WAL_MAX,
            DEFAULT_SEGMENT,
            DEFAULT_BODY_SIZE,
            DEFAULT_MEMORY,
        ] {
            assert!(parse_size(s).is_ok_and(|b| b > 0), "{s}");
        }
        assert!(parse_cpu(DEFAULT_CPU).is_ok_and(|m| m > 0));
    }
}

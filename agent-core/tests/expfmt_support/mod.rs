//! Helpers shared by the exposition parser's integration tests.
#![allow(dead_code)]

use outpost_core::error::ScrapeError;
use outpost_core::expfmt::{ExpositionFormat, Parser, Sample};
use outpost_core::plan::Limits;

/// A sample copied out of the parser. The value is kept as bits so that NaN
/// compares equal to NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value_bits: u64,
    pub timestamp_ms: Option<i64>,
}

impl Owned {
    pub fn of(s: &Sample<'_>) -> Owned {
        Owned {
            name: s.name.to_string(),
            labels: s
                .labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            value_bits: s.value.to_bits(),
            timestamp_ms: s.timestamp_ms,
        }
    }

    pub fn value(&self) -> f64 {
        f64::from_bits(self.value_bits)
    }
}

/// Limits roomy enough for every committed fixture.
pub fn roomy_limits() -> Limits {
    Limits {
        body_bytes: 64 << 20,
        samples: 1_000_000,
        label_count: 32,
        label_name_bytes: 128,
        label_value_bytes: 4096,
    }
}

/// Parses `body` fed in the chunks `cuts` gives (lengths, cycled).
pub fn parse_chunked(
    parser: &mut Parser,
    format: ExpositionFormat,
    body: &[u8],
    chunk_len: &mut dyn FnMut() -> usize,
) -> Result<Vec<Owned>, ScrapeError> {
    parser.reset(format);
    let mut out = Vec::new();
    let mut sink = |s: &Sample<'_>| {
        out.push(Owned::of(s));
        Ok(())
    };
    let mut rest = body;
    while !rest.is_empty() {
        let n = chunk_len().clamp(1, rest.len());
        let (chunk, after) = rest.split_at(n);
        parser.handle_chunk(chunk, &mut sink)?;
        rest = after;
    }
    parser.finish(&mut sink)?;
    assert_eq!(parser.bytes_seen(), body.len() as u64);
    Ok(out)
}

pub fn parse_whole(
    limits: &Limits,
    format: ExpositionFormat,
    body: &[u8],
) -> Result<Vec<Owned>, ScrapeError> {
    let mut parser = Parser::new(limits);
    let len = body.len();
    parse_chunked(&mut parser, format, body, &mut || len)
}

/// xorshift64*: deterministic chunk sizes without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A kube-state-metrics-shaped body: families of pod and node series with
/// 5 to 8 labels each, UUIDs, IPs and long-ish values, HELP and TYPE lines.
pub fn ksm_body(series: usize) -> String {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let namespaces = [
        "kube-system",
        "monitoring",
        "monitoring-tenant-a",
        "monitoring-tenant-b",
        "default",
    ];
    let phases = ["Pending", "Succeeded", "Failed", "Unknown", "Running"];
    let mut out = String::with_capacity(series * 200);
    let mut written = 0;
    let mut family = 0;
    while written < series {
        let per_family = 1000.min(series - written);
        match family % 3 {
            0 => {
                out.push_str("# HELP kube_pod_status_phase [STABLE] The pods current phase.\n");
                out.push_str("# TYPE kube_pod_status_phase gauge\n");
            }
            1 => {
                out.push_str("# HELP kube_pod_container_resource_requests The number of requested request resource by a container.\n");
                out.push_str("# TYPE kube_pod_container_resource_requests gauge\n");
            }
            _ => {
                out.push_str("# HELP kube_pod_container_status_restarts_total [STABLE] The number of container restarts per container.\n");
                out.push_str("# TYPE kube_pod_container_status_restarts_total counter\n");
            }
        }
        for i in 0..per_family {
            let ns = namespaces[rng.below(namespaces.len() as u64) as usize];
            let pod = format!("worker-{:05x}-{:05x}", family * 1000 + i, rng.below(1 << 20));
            let uid = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                rng.below(1 << 32),
                rng.below(1 << 16),
                rng.below(1 << 16),
                rng.below(1 << 16),
                rng.below(1 << 48)
            );
            let line = match family % 3 {
                0 => format!(
                    "kube_pod_status_phase{{namespace=\"{ns}\",pod=\"{pod}\",uid=\"{uid}\",phase=\"{}\"}} {}\n",
                    phases[i % 5],
                    u8::from(i % 5 == 4)
                ),
                1 => format!(
                    "kube_pod_container_resource_requests{{namespace=\"{ns}\",pod=\"{pod}\",uid=\"{uid}\",container=\"worker\",node=\"edge-02-node-{}\",resource=\"memory\",unit=\"byte\"}} {}\n",
                    rng.below(8),
                    rng.below(1 << 30)
                ),
                _ => format!(
                    "kube_pod_container_status_restarts_total{{namespace=\"{ns}\",pod=\"{pod}\",uid=\"{uid}\",container=\"worker\",node=\"edge-02-node-{}\"}} {}\n",
                    rng.below(8),
                    rng.below(4)
                ),
            };
            out.push_str(&line);
        }
        written += per_family;
        family += 1;
    }
    out
}

pub mod fuzz_check {
    include!("fuzz_check.rs");
}

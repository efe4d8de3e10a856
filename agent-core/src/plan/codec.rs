//! The plan's bytes: the header, the postcard payload and what each format version appends.

use super::*;

/// Serializes a plan with its header. Deterministic: the same plan gives
/// the same bytes.
pub fn encode(plan: &Plan) -> Result<Vec<u8>, postcard::Error> {
    let version = plan.format_version();
    let mut payload = postcard::to_allocvec(plan)?;
    if version >= 2 {
        let default = NodeOptions::default();
        let options = plan.node.as_ref().map_or(&default, |n| &n.options);
        payload.extend_from_slice(&postcard::to_allocvec(options)?);
    }
    if version >= 3 {
        payload.extend_from_slice(&postcard::to_allocvec(&plan.wal.mode)?);
        let targeting: Vec<&Targeting> = plan.scrape_jobs.iter().map(|j| &j.targeting).collect();
        payload.extend_from_slice(&postcard::to_allocvec(&targeting)?);
    }
    if version >= 4 {
        payload.extend_from_slice(&postcard::to_allocvec(&plan.sharing)?);
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

impl Plan {
    /// The oldest format version that holds this plan: 1 unless the node section names a
    /// collector added in version 2 or sets an option (2), or the WAL holds records in memory or
    /// a job relabels or discovers its targets (3), or the targets share scrape slots and a
    /// series pool (4), so that plans which need nothing new stay
    /// readable by older agents (and byte-identical to what older compilers wrote).
    pub fn format_version(&self) -> u16 {
        if self.sharing.is_some() {
            return 4;
        }
        let default = Targeting::default();
        if matches!(self.wal.mode, WalMode::Spill(_))
            || self.scrape_jobs.iter().any(|j| j.targeting != default)
        {
            return 3;
        }
        let Some(node) = &self.node else { return 1 };
        let collectors = node.collectors.iter().map(|c| c.since_version());
        let options = if node.options == NodeOptions::default() {
            1
        } else {
            2
        };
        collectors.chain([options]).max().unwrap_or(1)
    }
}

pub fn decode(bytes: &[u8]) -> Result<Plan, PlanError> {
    if bytes.len() < HEADER_LEN {
        return Err(PlanError::TooShort { len: bytes.len() });
    }
    if bytes.len() > MAX_PLAN_BYTES {
        return Err(PlanError::TooLong {
            len: bytes.len(),
            max: MAX_PLAN_BYTES,
        });
    }
    if bytes[..8] != MAGIC {
        return Err(PlanError::BadMagic);
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let version = u16_at(8);
    if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(PlanError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let flags = u16_at(10);
    if flags != 0 {
        return Err(PlanError::UnknownFlags(flags));
    }
    let len = u32_at(12);
    let payload = &bytes[HEADER_LEN..];
    if len as usize != payload.len() {
        return Err(PlanError::LengthMismatch {
            header: len,
            actual: payload.len(),
        });
    }
    let crc = u32_at(16);
    let actual = crc32fast::hash(payload);
    if crc != actual {
        return Err(PlanError::Checksum { header: crc, actual });
    }
    let (mut plan, mut rest): (Plan, &[u8]) =
        postcard::take_from_bytes(payload).map_err(PlanError::Payload)?;
    if version >= 2 {
        let (options, after): (NodeOptions, &[u8]) =
            postcard::take_from_bytes(rest).map_err(PlanError::Payload)?;
        if let Some(node) = &mut plan.node {
            node.options = options;
        }
        rest = after;
    }
    if version >= 3 {
        let (mode, after): (WalMode, &[u8]) = postcard::take_from_bytes(rest).map_err(PlanError::Payload)?;
        plan.wal.mode = mode;
        rest = after;
        let (targeting, after): (Vec<Targeting>, &[u8]) =
            postcard::take_from_bytes(rest).map_err(PlanError::Payload)?;
        if targeting.len() != plan.scrape_jobs.len() {
            return Err(PlanError::Invalid {
                field: "scrape_jobs.targeting",
                reason: "not one entry per scrape job",
            });
        }
        for (job, t) in plan.scrape_jobs.iter_mut().zip(targeting) {
            job.targeting = t;
        }
        rest = after;
    }
    if version >= 4 {
        let (sharing, after): (Option<Sharing>, &[u8]) =
            postcard::take_from_bytes(rest).map_err(PlanError::Payload)?;
        plan.sharing = sharing;
        rest = after;
    }
    if version == 1 && plan.format_version() > 1 {
        return Err(PlanError::Invalid {
            field: "node.collectors",
            reason: "a collector added in format version 2 in a version-1 plan",
        });
    }
    if !rest.is_empty() {
        return Err(PlanError::TrailingBytes(rest.len()));
    }
    plan.validate()?;
    Ok(plan)
}

//! The shard count the send rate calls for, by Prometheus's rule: every
//! [`SHARD_UPDATE_INTERVAL_MS`], shards = time per sample x (incoming rate +
//! a tenth of the backlog per interval), with averaged rates and a
//! tolerance so that the count does not flap.

/// How often the shard count is re-evaluated, as in Prometheus.
pub const SHARD_UPDATE_INTERVAL_MS: u64 = 10_000;
/// Changes smaller than this fraction of the current count are ignored.
const SHARD_TOLERANCE: f64 = 0.3;
/// Weight of the newest interval in the rate averages.
const EWMA_WEIGHT: f64 = 0.2;

/// Send-rate bookkeeping for the shard count.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Throughput {
    next_update_ms: u64,
    samples_in: u64,
    samples_out: u64,
    busy_ms: u64,
    retried: bool,
    rate_in: f64,
    rate_out: f64,
    busy_rate: f64,
    initialised: bool,
}

/// What an interval closed with: the inputs of the shard estimate.
#[derive(Debug, Clone, Copy)]
pub(super) struct Estimate {
    /// Busy shard-milliseconds per millisecond over samples per millisecond.
    ms_per_sample: f64,
    rate_in: f64,
    /// A send was retried in the interval.
    retried: bool,
}

impl Throughput {
    /// Samples handed to the sender.
    pub(super) fn count_in(&mut self, samples: u64) {
        self.samples_in += samples;
    }

    /// Samples the receiver acknowledged.
    pub(super) fn count_out(&mut self, samples: u64) {
        self.samples_out += samples;
    }

    /// Time a request was on the wire.
    pub(super) fn count_busy(&mut self, ms: u64) {
        self.busy_ms += ms;
    }

    pub(super) fn count_retry(&mut self) {
        self.retried = true;
    }

    /// When the next interval closes; `None` until the first
    /// [`Throughput::poll_estimate`] started the clock.
    pub(super) fn next_update_ms(&self) -> Option<u64> {
        self.initialised.then_some(self.next_update_ms)
    }

    /// Closes the interval once it is due, folding its rates into the
    /// averages, and gives the estimate's inputs; `None` when no interval
    /// closed or nothing was sent yet.
    pub(super) fn poll_estimate(&mut self, now_ms: u64) -> Option<Estimate> {
        if !self.initialised {
            self.initialised = true;
            self.next_update_ms = now_ms + SHARD_UPDATE_INTERVAL_MS;
            return None;
        }
        if now_ms < self.next_update_ms {
            return None;
        }
        let interval = SHARD_UPDATE_INTERVAL_MS as f64;
        let blend = |avg: f64, new: f64, first: bool| {
            if first {
                new
            } else {
                avg + EWMA_WEIGHT * (new - avg)
            }
        };
        let first = self.rate_out == 0.0 && self.busy_rate == 0.0;
        self.rate_in = blend(self.rate_in, self.samples_in as f64 / interval, first);
        self.rate_out = blend(self.rate_out, self.samples_out as f64 / interval, first);
        self.busy_rate = blend(self.busy_rate, self.busy_ms as f64 / interval, first);
        let retried = self.retried;
        self.samples_in = 0;
        self.samples_out = 0;
        self.busy_ms = 0;
        self.retried = false;
        self.next_update_ms = now_ms + SHARD_UPDATE_INTERVAL_MS;
        if self.rate_out <= 0.0 {
            return None;
        }
        Some(Estimate {
            ms_per_sample: self.busy_rate / self.rate_out,
            rate_in: self.rate_in,
            retried,
        })
    }
}

impl Estimate {
    /// The shard count to move to from `current` with `backlog` samples
    /// pending, within `min..=max`; `None` to stay.
    pub(super) fn shards(&self, backlog: u64, current: u16, min: u16, max: u16) -> Option<u16> {
        let interval = SHARD_UPDATE_INTERVAL_MS as f64;
        let wanted = self.ms_per_sample * (self.rate_in + 0.1 * backlog as f64 / interval);
        let current = f64::from(current);
        if (wanted - current).abs() <= current * SHARD_TOLERANCE {
            return None;
        }
        // A failing receiver is not helped by more connections.
        if self.retried && wanted > current {
            return None;
        }
        // Clamped first: a near-zero send rate makes the estimate huge.
        let wanted = wanted.min(f64::from(max));
        let ceil = wanted as u64 + u64::from(fract_part(wanted) > 0.0);
        Some(ceil.clamp(u64::from(min), u64::from(max)) as u16)
    }
}

/// `f64::fract` lives in std; this is enough for the non-negative shard
/// estimate.
fn fract_part(x: f64) -> f64 {
    x - (x as u64) as f64
}

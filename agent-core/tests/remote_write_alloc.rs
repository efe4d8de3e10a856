//! Steady state allocates nothing: batch 10,000 samples into two records,
//! compress, frame as WAL records, run them through the sender as one run
//! and join them into a request body (one record filtered for age), cycle
//! after cycle, under a counting global allocator.

use outpost_core::labels::LabelSet;
use outpost_core::plan::Queue;
use outpost_core::queue::{Outcome, RecordMeta, Sender, RECORDS_PER_SHARD};
use outpost_core::remote_write::{BatchBuilder, PushError};
use outpost_core::request::RequestBuilder;
use outpost_core::snappy::max_compressed_len;
use outpost_core::wal_record::{encode_record, RecordReader, HEADER_LEN};
use outpost_test_support::{count_allocations, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const SERIES: usize = 10_000;

struct Pipeline {
    series: Vec<LabelSet>,
    builder: BatchBuilder,
    compressed: Vec<u8>,
    wal: Vec<u8>,
    sender: Sender,
    records: Vec<RecordMeta>,
    request: RequestBuilder,
    body: Vec<u8>,
    metrics: String,
    seq: u64,
}

impl Pipeline {
    fn new() -> Pipeline {
        let queue = Queue {
            capacity: 20_000,
            min_shards: 1,
            max_shards: 4,
            max_samples_per_send: SERIES as u32,
            batch_send_deadline_ms: 10_000,
            min_backoff_ms: 30,
            max_backoff_ms: 5_000,
            max_batch_bytes: 4 << 20,
            max_sample_age_ms: 3_600_000,
        };
        let series = (0..SERIES)
            .map(|i| {
                let mut l = LabelSet::with_capacity(8, 256);
                l.push("__name__", "kube_pod_status_phase").unwrap();
                l.push("namespace", &format!("team-{}", i % 13)).unwrap();
                l.push("phase", ["Running", "Pending", "Failed"][i % 3]).unwrap();
                l.push("pod", &format!("deploy-{i:05}")).unwrap();
                l
            })
            .collect();
        let max_compressed = max_compressed_len(u64::from(queue.max_batch_bytes)) as usize;
        Pipeline {
            series,
            builder: BatchBuilder::new(&queue),
            compressed: Vec::with_capacity(max_compressed),
            wal: Vec::with_capacity(HEADER_LEN + max_compressed),
            sender: Sender::new(&queue),
            records: Vec::with_capacity(RECORDS_PER_SHARD),
            request: RequestBuilder::new(queue.max_batch_bytes as usize),
            body: Vec::with_capacity(RequestBuilder::body_capacity(queue.max_batch_bytes as usize)),
            metrics: String::with_capacity(16 * 1024),
            seq: 0,
        }
    }

    /// Half a scrape into one WAL record (`self.wal` keeps every record of
    /// the cycle); the second half carries one sample two hours old.
    fn record(&mut self, half: usize, now_ms: u64) {
        for (i, l) in self
            .series
            .iter()
            .enumerate()
            .skip(half * SERIES / 2)
            .take(SERIES / 2)
        {
            let ts = if half == 1 && i == SERIES - 1 {
                now_ms as i64 - 7_200_000
            } else {
                now_ms as i64
            };
            match self.builder.push(l, i as f64, ts) {
                Ok(()) => {}
                Err(PushError::BatchFull) => panic!("batch sized for one scrape"),
                Err(e) => panic!("{e}"),
            }
        }
        let meta = RecordMeta {
            seq: self.seq,
            shard: 0,
            samples: self.builder.samples(),
            oldest_timestamp_ms: self.builder.oldest_timestamp_ms().unwrap(),
            newest_timestamp_ms: self.builder.newest_timestamp_ms().unwrap(),
            bytes: 0,
            raw_bytes: 0,
        };
        self.builder.finish_into(&mut self.compressed);
        let at = self.wal.len();
        encode_record(&meta, &self.compressed, &mut self.wal);
        let record = RecordReader::new(&self.wal[at..], self.compressed.capacity())
            .next()
            .unwrap()
            .unwrap();
        self.sender.handle_enqueued(record.meta, now_ms).unwrap();
        self.seq += 1;
    }

    /// Builds the body of the run the sender hands out, as the shell does.
    fn send(&mut self, now_ms: u64) -> u64 {
        let run = self
            .sender
            .poll_transmit(now_ms, now_ms as i64, &mut self.records)
            .unwrap();
        assert_eq!(self.records.len(), 2, "both halves in one run");
        self.request.begin(&mut self.body);
        let mut reader = RecordReader::new(&self.wal, self.compressed.capacity());
        for meta in &self.records {
            let record = reader.next().unwrap().unwrap();
            assert_eq!(record.meta.seq, meta.seq);
            let aged = self
                .request
                .push(meta, record.payload, run.cutoff_ms, &mut self.body)
                .unwrap();
            self.sender.handle_aged_out(meta.seq, aged);
        }
        let at = self.request.finish(&mut self.body);
        assert!(self
            .sender
            .handle_built(run.id, (self.body.len() - at) as u64, now_ms));
        run.id
    }

    /// One scrape's worth of samples through to an ack; returns the samples acked.
    fn cycle(&mut self, now_ms: u64) -> u64 {
        self.wal.clear();
        let acked_before = self.sender.counters.succeeded_samples_total;
        self.record(0, now_ms);
        self.record(1, now_ms);
        let run = self.send(now_ms);
        // One failure and a retry, then the ack, to cover the backoff path.
        let Outcome::Retry { at_ms, .. } = self.sender.handle_response(run, 503, None, now_ms + 5) else {
            panic!("503 retries")
        };
        let again = self.send(at_ms);
        assert!(matches!(
            self.sender.handle_response(again, 200, None, at_ms + 5),
            Outcome::Acked { .. }
        ));
        self.metrics.clear();
        self.sender
            .render_metrics(&mut self.metrics, "thanos", "http://receive:19291/api/v1/receive")
            .unwrap();
        self.sender.counters.succeeded_samples_total - acked_before
    }
}

#[test]
fn push_finish_wal_send_cycle_allocates_nothing_after_warm_up() {
    // The counter sees this thread's allocations at all.
    let (probe, allocations) = count_allocations(|| std::hint::black_box(vec![0u8; 64]));
    drop(probe);
    assert_eq!(allocations, 1);

    let mut p = Pipeline::new();
    let mut now = 1_700_000_000_000u64;
    // Warm-up: the first cycle may touch lazily initialised runtime state.
    p.cycle(now);
    let (samples, allocations) = count_allocations(|| {
        let mut samples = 0;
        for _ in 0..20 {
            now += 30_000;
            samples += p.cycle(now);
        }
        samples
    });
    // Per cycle one sample was two hours old: left out, counted once.
    assert_eq!(samples, 20 * (SERIES as u64 - 1));
    assert_eq!(
        p.sender.counters.succeeded_samples_total,
        21 * (SERIES as u64 - 1)
    );
    assert_eq!(p.sender.counters.dropped_too_old, 21);
    assert!(p
        .metrics
        .contains("prometheus_remote_storage_succeeded_samples_total"));
    assert_eq!(allocations, 0, "allocations in the steady state");
}

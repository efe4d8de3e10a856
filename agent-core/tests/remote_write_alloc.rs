//! Steady state allocates nothing: batch 10,000 samples, compress, frame as
//! a WAL record, and run the batch through the sender, cycle after cycle,
//! under a counting global allocator.

use outpost_core::labels::LabelSet;
use outpost_core::plan::{snappy_max_len, Queue};
use outpost_core::queue::{BatchMeta, Outcome, Sender};
use outpost_core::remote_write::{BatchBuilder, PushError};
use outpost_core::wal::{encode_record, RecordReader, HEADER_LEN};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Only the test's own thread is counted; libtest's threads are not ours.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERIES: usize = 10_000;

struct Pipeline {
    series: Vec<LabelSet>,
    builder: BatchBuilder,
    compressed: Vec<u8>,
    wal: Vec<u8>,
    sender: Sender,
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
        let max_compressed = snappy_max_len(u64::from(queue.max_batch_bytes)) as usize;
        Pipeline {
            series,
            builder: BatchBuilder::new(&queue),
            compressed: Vec::with_capacity(max_compressed),
            wal: Vec::with_capacity(HEADER_LEN + max_compressed),
            sender: Sender::new(&queue),
            metrics: String::with_capacity(16 * 1024),
            seq: 0,
        }
    }

    /// One scrape's worth of samples through to an ack; returns the samples acked.
    fn cycle(&mut self, now_ms: u64) -> u64 {
        self.builder.begin(now_ms);
        for (i, l) in self.series.iter().enumerate() {
            match self.builder.push(l, i as f64, now_ms as i64) {
                Ok(()) => {}
                Err(PushError::BatchFull) => panic!("batch sized for one scrape"),
                Err(e) => panic!("{e}"),
            }
        }
        let meta = BatchMeta {
            seq: self.seq,
            shard: 0,
            samples: self.builder.samples(),
            oldest_timestamp_ms: self.builder.oldest_timestamp_ms().unwrap(),
            newest_timestamp_ms: self.builder.newest_timestamp_ms().unwrap(),
            bytes: 0,
        };
        let n = self.builder.finish_into(&mut self.compressed);
        self.wal.clear();
        encode_record(&meta, &self.compressed, &mut self.wal);
        let record = RecordReader::new(&self.wal, self.compressed.capacity())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(record.payload.len(), n);
        self.sender
            .handle_enqueued(BatchMeta {
                bytes: n as u32,
                ..record.meta
            })
            .unwrap();
        self.seq += 1;
        let sent = self.sender.poll_transmit(now_ms).unwrap();
        // One failure and a retry, then the ack, to cover the backoff path.
        let Outcome::Retry { at_ms, .. } = self.sender.handle_response(sent.seq, 503, None, now_ms + 5)
        else {
            panic!("503 retries")
        };
        let again = self.sender.poll_transmit(at_ms).unwrap();
        assert!(matches!(
            self.sender.handle_response(again.seq, 200, None, at_ms + 5),
            Outcome::Acked { .. }
        ));
        self.metrics.clear();
        self.sender
            .render_metrics(&mut self.metrics, "thanos", "http://receive:19291/api/v1/receive")
            .unwrap();
        u64::from(sent.samples)
    }
}

#[test]
fn push_finish_wal_send_cycle_allocates_nothing_after_warm_up() {
    // The counter sees this thread's allocations at all.
    COUNTING.with(|c| c.set(true));
    let probe = std::hint::black_box(vec![0u8; 64]);
    COUNTING.with(|c| c.set(false));
    drop(probe);
    assert_eq!(ALLOCATIONS.swap(0, Ordering::Relaxed), 1);

    let mut p = Pipeline::new();
    let mut now = 1_700_000_000_000u64;
    // Warm-up: the first cycle may touch lazily initialised runtime state.
    p.cycle(now);
    COUNTING.with(|c| c.set(true));
    let mut samples = 0;
    for _ in 0..20 {
        now += 30_000;
        samples += p.cycle(now);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(samples, 20 * SERIES as u64);
    assert_eq!(p.sender.counters.succeeded_samples_total, 21 * SERIES as u64);
    assert!(p
        .metrics
        .contains("prometheus_remote_storage_succeeded_samples_total"));
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations in the steady state"
    );
}

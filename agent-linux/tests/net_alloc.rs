//! After the first exchange, further keep-alive exchanges on one HttpClientConn (plain HTTP,
//! gzip body) allocate nothing on the calling thread: buffers come from `new`.

#[path = "net_support.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::Events;
use outpost_agent::net::{HttpClientConn, Progress, ResponseHead};
use support::*;

struct CountingAlloc;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialized and without destructor, so reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn keep_alive_exchanges_after_warm_up_do_not_allocate() {
    let text: Vec<u8> = (0..3000)
        .flat_map(|i| format!("node_x{{i=\"{i}\"}} {i}\n").into_bytes())
        .collect();
    let z = gzip(&text);
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        z.len()
    )
    .into_bytes();
    response.extend(&z);
    let server = TestServer::start(move |mut s| {
        while read_request(&mut s).is_some() {
            if !write_all(&mut s, &response) {
                break;
            }
        }
    });
    let mut conn = HttpClientConn::new(server.addr, None, "localhost", CONN, small_bufs()).unwrap();
    let mut driver = Driver::new();
    let mut events = Events::with_capacity(16);
    let start = Instant::now();
    let req = get("/metrics", "target", 5000);
    let mut body_len: usize;
    let mut checksum = 0u32;
    let mut allocs_per_round = Vec::with_capacity(10);

    for round in 0..10 {
        let before = ALLOCS.load(Ordering::SeqCst);
        COUNTING.with(|c| c.set(round > 0));
        body_len = 0;
        checksum = 0;
        let now = start.elapsed().as_millis() as u64;
        conn.start_request(driver.poll.registry(), &req, now).unwrap();
        let head: ResponseHead = loop {
            driver
                .poll
                .poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            let now = start.elapsed().as_millis() as u64;
            let mut sink = |_: &ResponseHead, b: &[u8]| -> Result<(), ()> {
                body_len += b.len();
                checksum = b.iter().fold(checksum, |a, &x| a.rotate_left(5) ^ u32::from(x));
                Ok(())
            };
            match conn.handle_event(driver.poll.registry(), now, &mut sink) {
                Progress::Pending => {}
                Progress::Done(h) => break h,
                Progress::Failed(f) => panic!("round {round}: {f:?}"),
            }
        };
        COUNTING.with(|c| c.set(false));
        assert_eq!(head.status, 200);
        assert_eq!(body_len, text.len());
        allocs_per_round.push(ALLOCS.load(Ordering::SeqCst) - before);
    }
    // The counter itself works: one Box on this thread while counting is one allocation.
    let before = ALLOCS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    let boxed = std::hint::black_box(Box::new(round_trip_marker()));
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.load(Ordering::SeqCst) - before, 1);
    drop(boxed);

    let expected = text.iter().fold(0u32, |a, &x| a.rotate_left(5) ^ u32::from(x));
    assert_eq!(checksum, expected);
    assert_eq!(conn.connects(), 1);
    assert_eq!(
        &allocs_per_round[1..],
        &[0; 9],
        "allocations per exchange: {allocs_per_round:?}"
    );
}

fn round_trip_marker() -> u64 {
    0x6f_7574_706f_7374
}

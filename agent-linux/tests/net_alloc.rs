//! After the first exchange, further keep-alive exchanges on one HttpClientConn (plain HTTP,
//! gzip body) allocate nothing on the calling thread: buffers come from `new`.

mod net_support;

use std::time::{Duration, Instant};

use mio::Events;
use net_support::*;
use outpost_agent::net::{HttpClientConn, Progress, ResponseHead};
use outpost_test_support::{count_allocations, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

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
        body_len = 0;
        checksum = 0;
        let mut exchange = || -> ResponseHead {
            let now = start.elapsed().as_millis() as u64;
            conn.start_request(driver.poll.registry(), &req, now).unwrap();
            loop {
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
            }
        };
        // The first exchange warms up; the others are counted.
        let (head, allocations) = if round > 0 {
            count_allocations(&mut exchange)
        } else {
            (exchange(), 0)
        };
        assert_eq!(head.status, 200);
        assert_eq!(body_len, text.len());
        allocs_per_round.push(allocations);
    }
    // The counter itself works: one Box on this thread while counting is one allocation.
    let (boxed, allocations) = count_allocations(|| std::hint::black_box(Box::new(round_trip_marker())));
    assert_eq!(allocations, 1);
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

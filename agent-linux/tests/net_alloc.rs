//! After the first exchange, further keep-alive exchanges on one HttpClientConn (plain HTTP,
//! gzip body) allocate nothing on the calling thread: buffers come from `new`. The status server
//! answers a page that grows, on a connection slot used for the first time, without allocating:
//! its buffers come from `bind`.

mod net_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use net_support::*;
use outpost_agent::net::{
    HttpClientConn, HttpServer, Progress, Responder, Response, ResponseHead, ServerLimits,
};
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

/// A page a few bytes longer at every request, as the agent's `/metrics` is when its counters
/// gain digits.
struct GrowingPage {
    len: usize,
}

impl Responder for GrowingPage {
    fn respond(&mut self, _method: &str, _path: &str, _query: &str, out: &mut Response) {
        self.len += 7;
        out.body.resize(self.len, b'x');
    }
}

/// Sends a GET on `s` and reads the whole answer: its length.
fn fetch(mut s: TcpStream) -> usize {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    answer.len()
}

#[test]
fn status_server_answers_growing_pages_on_new_slots_without_allocating() {
    const RESPONSE_BYTES: usize = 8 * 1024;
    let mut poll = Poll::new().unwrap();
    let limits = ServerLimits {
        response_bytes: RESPONSE_BYTES,
        ..ServerLimits::default()
    };
    let mut server = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        poll.registry(),
        Token(0),
        100,
        limits,
    )
    .unwrap();
    let addr: SocketAddr = server.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let connect = || TcpStream::connect(addr).unwrap();
        let mut lens = vec![fetch(connect())];
        // One after another: every one in the first slot.
        for _ in 0..4 {
            lens.push(fetch(connect()));
        }
        // A connection that holds the first slot while a second is answered in the next one.
        let held = connect();
        std::thread::sleep(Duration::from_millis(50));
        lens.push(fetch(connect()));
        lens.push(fetch(held));
        lens
    });
    let mut page = GrowingPage { len: 1_000 };
    let mut events = Events::with_capacity(16);
    let start = Instant::now();
    let mut serve_until = |server: &mut HttpServer, page: &mut GrowingPage, responses: u64| {
        while server.stats().responses < responses {
            assert!(start.elapsed() < Duration::from_secs(20), "{:?}", server.stats());
            poll.poll(&mut events, Some(Duration::from_millis(10))).unwrap();
            for ev in events.iter() {
                server.handle_event(poll.registry(), ev.token(), 0, page);
            }
        }
    };
    // The first answer is not counted: the listener's first accept may set things up.
    serve_until(&mut server, &mut page, 1);
    let ((), allocations) = count_allocations(|| serve_until(&mut server, &mut page, 7));
    let lens = client.join().unwrap();
    assert_eq!(server.stats().accepted, 7);
    assert_eq!(page.len, 1_000 + 7 * 7);
    // Each answer is the head and the page, one request later 7 bytes longer (the held
    // connection's request was answered last).
    let bodies: Vec<usize> = lens.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(bodies, [7; 6], "answer lengths {lens:?}");
    assert_eq!(allocations, 0, "the status server allocated answering {lens:?}");
}

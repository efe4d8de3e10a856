//! HttpClientConn over plain TCP against loopback servers, including hostile ones.

mod net_support;

use std::io::Write;
use std::net::TcpListener;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use mio::Events;
use net_support::*;
use outpost_agent::net::{HttpClientConn, NetError, Phase, Progress, Request, ResponseHead};

fn conn_to(server: &TestServer) -> HttpClientConn {
    HttpClientConn::new(server.addr, None, "localhost", CONN, small_bufs()).unwrap()
}

#[test]
fn plain_get_with_content_length_sends_headers_and_returns_body() {
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = seen.clone();
    let server = TestServer::start(move |mut s| {
        let (head, _) = read_request(&mut s).unwrap();
        *seen2.lock().unwrap() = head;
        let body = "up 1\nnode_load1 0.5\n";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        write_all(&mut s, resp.as_bytes());
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let headers: [(&str, &[u8]); 1] = [("Authorization", b"Bearer s3cret")];
    let req = Request {
        headers: &headers,
        ..get("/metrics?x=1", "target:9100", 5000)
    };
    let (res, body) = driver.exchange(&mut conn, &req);
    let head = res.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.content_type(), "text/plain; version=0.0.4");
    assert_eq!(head.content_length, Some(20));
    assert_eq!(body, b"up 1\nnode_load1 0.5\n");
    let req_head = seen.lock().unwrap().clone();
    assert!(
        req_head.starts_with("GET /metrics?x=1 HTTP/1.1\r\n"),
        "{req_head}"
    );
    assert!(req_head.contains("\r\nHost: target:9100\r\n"), "{req_head}");
    assert!(req_head.contains("\r\nAccept-Encoding: gzip\r\n"), "{req_head}");
    assert!(
        req_head.contains("\r\nAuthorization: Bearer s3cret\r\n"),
        "{req_head}"
    );
    assert!(
        !req_head.contains("Content-Length"),
        "GET carries no body: {req_head}"
    );
}

#[test]
fn chunked_body_with_extensions_and_trailer_is_dechunked() {
    let server = TestServer::start(|mut s| {
        read_request(&mut s).unwrap();
        // Separate writes so the client sees the framing split across reads.
        for part in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"5;name=val\r\nhello\r",
            b"\n7\r\n, world\r\n",
            b"0\r\nX-Trailer: 1\r\n\r\n",
        ] {
            write_all(&mut s, part);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let (res, body) = driver.exchange(&mut conn, &get("/", "h", 5000));
    let head = res.unwrap();
    assert!(head.chunked);
    assert_eq!(String::from_utf8(body).unwrap(), "hello, world");
}

fn exposition(lines: usize) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..lines {
        text.push_str(&format!(
            "node_cpu_seconds_total{{cpu=\"{i}\",mode=\"idle\"}} {}.25\n",
            i * 7
        ));
    }
    text.into_bytes()
}

#[test]
fn gzip_chunked_body_is_inflated() {
    let plain = exposition(5000);
    let compressed = gzip(&plain);
    assert!(compressed.len() < plain.len() / 4);
    let server = TestServer::start(move |mut s| {
        read_request(&mut s).unwrap();
        let mut out =
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in compressed.chunks(1000) {
            out.extend(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend(piece);
            out.extend(b"\r\n");
        }
        out.extend(b"0\r\n\r\n");
        write_all(&mut s, &out);
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let (res, body) = driver.exchange(&mut conn, &get("/metrics", "h", 5000));
    let head = res.unwrap();
    assert!(head.gzip && head.chunked);
    assert_eq!(body.len(), plain.len());
    assert_eq!(body, plain);
}

#[test]
fn keep_alive_reuses_one_connection_for_three_requests() {
    let server = TestServer::start(|mut s| {
        let mut n = 0;
        while let Some((head, _)) = read_request(&mut s) {
            n += 1;
            let path = head.split(' ').nth(1).unwrap().to_string();
            let body = format!("request {n} for {path}\n");
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            if !write_all(&mut s, resp.as_bytes()) {
                break;
            }
        }
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    for i in 1..=3 {
        let path = format!("/m{i}");
        let (res, body) = driver.exchange(&mut conn, &get(&path, "h", 5000));
        assert_eq!(res.unwrap().status, 200);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("request {i} for {path}\n")
        );
    }
    assert_eq!(conn.connects(), 1);
    assert_eq!(server.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn server_closing_a_kept_alive_connection_is_reconnected_transparently() {
    // Answers one request per connection without saying `Connection: close`.
    let server = TestServer::start(|mut s| {
        if read_request(&mut s).is_some() {
            write_all(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    for _ in 0..3 {
        let (res, body) = driver.exchange(&mut conn, &get("/", "h", 5000));
        assert_eq!(res.unwrap().status, 200);
        assert_eq!(body, b"ok");
    }
    assert_eq!(conn.connects(), 3);
}

#[test]
fn post_sends_body_and_caller_headers_and_reads_retry_after() {
    let got = Arc::new(Mutex::new((String::new(), Vec::new())));
    let got2 = got.clone();
    let server = TestServer::start(move |mut s| {
        let (head, body) = read_request(&mut s).unwrap();
        *got2.lock().unwrap() = (head, body);
        write_all(
            &mut s,
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 17\r\nContent-Length: 9\r\n\r\nslow down",
        );
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let payload: Vec<u8> = (0..=255u8).cycle().take(40_000).collect();
    let headers: [(&str, &[u8]); 4] = [
        ("Content-Type", b"application/x-protobuf"),
        ("Content-Encoding", b"snappy"),
        ("X-Prometheus-Remote-Write-Version", b"0.1.0"),
        ("THANOS-TENANT", b"tenant-a"),
    ];
    let req = Request {
        method: "POST",
        path: "/api/v1/receive",
        host: "receiver:19291",
        headers: &headers,
        body: &payload,
        accept_gzip: false,
        limits: limits(4096, 4096),
        timeout_ms: 5000,
    };
    let (res, body) = driver.exchange(&mut conn, &req);
    let head = res.unwrap();
    assert_eq!(head.status, 429);
    assert_eq!(head.retry_after_s, Some(17));
    assert_eq!(body, b"slow down");
    let (req_head, req_body) = got.lock().unwrap().clone();
    assert!(req_head.starts_with("POST /api/v1/receive HTTP/1.1\r\n"));
    assert!(req_head.contains("\r\nContent-Length: 40000\r\n"));
    assert!(req_head.contains("\r\nTHANOS-TENANT: tenant-a\r\n"));
    assert!(!req_head.contains("Accept-Encoding"));
    assert_eq!(req_body, payload);
}

#[test]
fn request_that_does_not_fit_the_buffer_or_injects_headers_is_refused() {
    let server = TestServer::start(|_| {});
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let big = vec![b'x'; 100_000];
    let req = Request {
        method: "POST",
        body: &big,
        ..get("/", "h", 1000)
    };
    let (res, _) = driver.exchange(&mut conn, &req);
    assert_eq!(net_err(res), NetError::RequestTooLarge { limit: 64 * 1024 });
    let headers: [(&str, &[u8]); 1] = [("X-Evil", b"a\r\nInjected: 1")];
    let req = Request {
        headers: &headers,
        ..get("/", "h", 1000)
    };
    let (res, _) = driver.exchange(&mut conn, &req);
    assert!(matches!(net_err(res), NetError::BadRequest { .. }));
    assert_eq!(conn.connects(), 0, "nothing is sent for a refused request");
}

#[test]
fn gzip_bomb_is_refused_at_the_decoded_limit() {
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(
        bomb.len() < 20 << 10,
        "10 MiB of zeros compress to {} bytes",
        bomb.len()
    );
    let server = TestServer::start(move |mut s| {
        read_request(&mut s).unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            bomb.len()
        );
        write_all(&mut s, head.as_bytes());
        write_all(&mut s, &bomb);
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let req = Request {
        limits: limits(1 << 20, 1 << 20),
        ..get("/metrics", "h", 5000)
    };
    let (res, body) = driver.exchange(&mut conn, &req);
    let err = net_err(res);
    assert_eq!(err, NetError::DecompressedTooLarge { limit: 1 << 20 });
    assert_eq!(err.reason(), "decompressed_size_limit");
    assert!(
        err.to_string().contains("max_decoded_bytes (1048576 bytes)"),
        "{err}"
    );
    assert!(
        body.len() <= 1 << 20,
        "the sink never sees bytes past the limit: {}",
        body.len()
    );
    assert!(body.iter().all(|&b| b == 0));
}

#[test]
fn declared_body_over_limit_is_refused_before_reading_it() {
    let server = TestServer::start(|mut s| {
        read_request(&mut s).unwrap();
        write_all(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n");
        let _ = s.write_all(&vec![b'a'; 100_000]);
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let req = Request {
        limits: limits(1 << 20, 4 << 20),
        ..get("/", "h", 5000)
    };
    let (res, body) = driver.exchange(&mut conn, &req);
    assert_eq!(net_err(res), NetError::BodyTooLarge { limit: 1 << 20 });
    assert!(body.is_empty());
}

#[test]
fn undeclared_body_over_limit_is_cut_at_the_limit() {
    // No Content-Length, no chunking: the body runs until close, and it is long.
    let server = TestServer::start(|mut s| {
        read_request(&mut s).unwrap();
        write_all(&mut s, b"HTTP/1.1 200 OK\r\n\r\n");
        let block = vec![b'z'; 64 * 1024];
        for _ in 0..64 {
            if s.write_all(&block).is_err() {
                break;
            }
        }
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let req = Request {
        limits: limits(256 * 1024, 4 << 20),
        ..get("/", "h", 5000)
    };
    let (res, body) = driver.exchange(&mut conn, &req);
    assert_eq!(net_err(res), NetError::BodyTooLarge { limit: 256 * 1024 });
    assert!(body.len() <= 256 * 1024);
}

#[test]
fn endless_chunked_body_ends_at_the_body_limit() {
    let server = TestServer::start(|mut s| {
        read_request(&mut s).unwrap();
        write_all(&mut s, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = format!("400\r\n{}\r\n", "e".repeat(0x400));
        // Runs until the client hangs up.
        while s.write_all(chunk.as_bytes()).is_ok() {}
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let req = Request {
        limits: limits(512 * 1024, 4 << 20),
        ..get("/", "h", 10_000)
    };
    let (res, body) = driver.exchange(&mut conn, &req);
    assert_eq!(net_err(res), NetError::BodyTooLarge { limit: 512 * 1024 });
    assert_eq!(
        body.len(),
        512 * 1024,
        "every whole chunk up to the limit was delivered"
    );
}

#[test]
fn slowloris_response_ends_at_the_deadline() {
    let server = TestServer::start(|mut s| {
        read_request(&mut s).unwrap();
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let (res, body) = driver.exchange(&mut conn, &get("/", "h", 1500));
    let err = net_err(res);
    assert_eq!(
        err,
        NetError::Timeout {
            phase: Phase::Head,
            timeout_ms: 1500
        }
    );
    assert_eq!(err.to_string(), "timeout after 1500 ms during read response head");
    assert!(body.is_empty());
    assert!(!conn.is_busy() && conn.deadline_ms().is_none());
}

/// The loop may reach a connection long after its deadline (a busy or
/// starved process): an answer that had arrived by then is judged by itself,
/// not failed as a timeout.
#[test]
fn answer_that_arrived_before_a_late_loop_looked_is_taken() {
    let (request_seen, wait_request) = mpsc::channel();
    let (answer, wait_answer) = mpsc::channel::<()>();
    let (answered, wait_answered) = mpsc::channel();
    let answer_rx = Mutex::new(wait_answer);
    let server = TestServer::start(move |mut s| {
        read_request(&mut s).unwrap();
        request_seen.send(()).unwrap();
        // Only once the client has stopped looking at its socket.
        answer_rx.lock().unwrap().recv().unwrap();
        write_all(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        answered.send(()).unwrap();
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let mut events = Events::with_capacity(16);
    let mut body = Vec::new();
    let mut sink = |_: &ResponseHead, b: &[u8]| -> Result<(), &'static str> {
        body.extend_from_slice(b);
        Ok(())
    };
    // The loop's time is an argument: the request starts at 0 with a deadline at 1000.
    conn.start_request(driver.poll.registry(), &get("/", "h", 1000), 0)
        .unwrap();
    assert_eq!(conn.deadline_ms(), Some(1000));
    // Connect and send the request, all at time 0.
    while wait_request.try_recv().is_err() {
        driver
            .poll
            .poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        if events.iter().any(|e| e.token() == conn.token()) {
            assert!(matches!(
                conn.handle_event(driver.poll.registry(), 0, &mut sink),
                Progress::Pending
            ));
        }
    }
    answer.send(()).unwrap();
    wait_answered.recv_timeout(Duration::from_secs(10)).unwrap();
    // The loop comes back half a second past the deadline.
    match conn.handle_event(driver.poll.registry(), 1500, &mut sink) {
        Progress::Done(head) => assert_eq!(head.status, 200),
        other => panic!("the answer was there, got {other:?}"),
    }
    assert_eq!(body, b"hello");
    assert!(!conn.is_busy() && conn.deadline_ms().is_none());
}

#[test]
fn connection_refused_is_named() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut conn = HttpClientConn::new(port, None, "localhost", CONN, small_bufs()).unwrap();
    let mut driver = Driver::new();
    let (res, _) = driver.exchange(&mut conn, &get("/", "h", 5000));
    match net_err(res) {
        NetError::Connect { addr, kind, .. } => {
            assert_eq!(addr, port);
            assert_eq!(kind, std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected Connect error, got {other:?}"),
    }
}

#[test]
fn status_204_and_http10_close_are_framed() {
    let server = TestServer::start(|mut s| {
        read_request(&mut s).unwrap();
        write_all(&mut s, b"HTTP/1.1 204 No Content\r\n\r\n");
        read_request(&mut s).unwrap();
        write_all(&mut s, b"HTTP/1.0 200 OK\r\n\r\nuntil close");
    });
    let mut conn = conn_to(&server);
    let mut driver = Driver::new();
    let (res, body) = driver.exchange(&mut conn, &get("/", "h", 5000));
    assert_eq!(res.unwrap().status, 204);
    assert!(body.is_empty());
    let (res, body) = driver.exchange(&mut conn, &get("/", "h", 5000));
    let head = res.unwrap();
    assert!(head.close);
    assert_eq!(body, b"until close");
    assert_eq!(conn.connects(), 1);
}

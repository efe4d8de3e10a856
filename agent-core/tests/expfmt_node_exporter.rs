//! Parses what a real node_exporter serves right now, fetched over a real
//! socket in the chunk sizes the socket hands over.

mod expfmt_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use expfmt_support::{roomy_limits, Owned};
use outpost_core::expfmt::{ExpositionFormat, Parser, Sample};
use outpost_test_support::NodeExporter;

/// The status line, the Content-Type and the socket's reads of the body.
fn get_metrics(port: u16) -> Option<(String, String, Vec<Vec<u8>>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/plain;version=0.0.4\r\n\r\n")
        .ok()?;
    let mut reads = Vec::new();
    let mut buf = [0u8; 1460];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reads.push(buf[..n].to_vec()),
            Err(e) => panic!("reading node_exporter: {e}"),
        }
    }
    let all = reads.concat();
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&all[..head_end]).into_owned();
    let status = head.lines().next()?.to_string();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    // Re-cut the body along the socket's read boundaries.
    let mut body_reads = Vec::new();
    let mut offset = 0;
    for r in &reads {
        let (start, end) = (offset.max(head_end), offset + r.len());
        if end > start {
            body_reads.push(all[start..end].to_vec());
        }
        offset = end;
    }
    Some((status, content_type, body_reads))
}

#[test]
fn live_node_exporter_body_parses_sample_for_sample() {
    let Some(exporter) = NodeExporter::start(&[]) else {
        return;
    };
    let port = exporter.port;
    let mut fetched = None;
    for _ in 0..100 {
        fetched = get_metrics(port);
        if fetched.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, content_type, reads) = fetched.expect("node_exporter never answered");
    assert!(status.contains(" 200 "), "{status}");
    let format = ExpositionFormat::from_content_type(&content_type);
    assert_eq!(format, ExpositionFormat::PrometheusText, "{content_type}");

    let mut parser = Parser::new(&roomy_limits());
    parser.reset(format);
    let mut samples = Vec::new();
    let mut sink = |s: &Sample<'_>| {
        samples.push(Owned::of(s));
        Ok(())
    };
    for read in &reads {
        parser.handle_chunk(read, &mut sink).unwrap();
    }
    parser.finish(&mut sink).unwrap();

    let body = reads.concat();
    let sample_lines = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .count();
    assert!(reads.len() > 1, "the body came in one read; nothing straddled");
    assert!(
        sample_lines > 200,
        "{sample_lines} samples is not a node_exporter"
    );
    assert_eq!(samples.len(), sample_lines);
    assert_eq!(parser.bytes_seen(), body.len() as u64);
    assert!(samples
        .iter()
        .any(|s| s.name == "node_cpu_seconds_total"
            && s.labels.iter().any(|(n, v)| n == "mode" && v == "idle")));
    let up_since = samples
        .iter()
        .find(|s| s.name == "node_boot_time_seconds")
        .expect("boot time");
    assert!(up_since.value() > 1e9);
}

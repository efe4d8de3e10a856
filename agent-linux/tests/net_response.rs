//! The sans-IO response parser alone: every split of the input gives the same result.

mod net_support;

use net_support::gzip;
use outpost_agent::net::{BodyLimits, Failure, Feed, GzipState, NetError, ResponseHead, ResponseParser};

type Outcome = Result<(ResponseHead, Vec<u8>, usize), Failure<&'static str>>;

/// Feeds `input` in pieces of `step` bytes; returns head, body and the bytes consumed in total.
fn parse_in_steps(parser: &mut ResponseParser, input: &[u8], step: usize, eof: bool) -> Outcome {
    let mut body = Vec::new();
    let mut used = 0;
    for piece in input.chunks(step.max(1)) {
        let mut sink = |_: &ResponseHead, b: &[u8]| -> Result<(), &'static str> {
            body.extend_from_slice(b);
            Ok(())
        };
        match parser.feed(piece, &mut sink)? {
            Feed::NeedMore => used += piece.len(),
            Feed::Done { consumed } => {
                used += consumed;
                return Ok((*parser.head().unwrap(), body, used));
            }
        }
    }
    if eof {
        parser.finish_at_eof::<&'static str>()?;
        return Ok((*parser.head().unwrap(), body, used));
    }
    Err(Failure::Net(NetError::ClosedEarly {
        phase: outpost_agent::net::Phase::Body,
    }))
}

fn parse(input: &[u8], limits: BodyLimits, eof: bool) -> Vec<Outcome> {
    let mut parser = ResponseParser::new(1024, 64);
    [1, 2, 3, 7, 64, 1000, input.len()]
        .iter()
        .map(|&step| {
            parser.begin(limits, false);
            parse_in_steps(&mut parser, input, step, eof)
        })
        .collect()
}

const ROOMY: BodyLimits = BodyLimits {
    max_body_bytes: 1 << 20,
    max_decoded_bytes: 1 << 20,
};

fn all_same(results: Vec<Outcome>) -> Outcome {
    for r in &results[1..] {
        assert_eq!(r, &results[0]);
    }
    results.into_iter().next().unwrap()
}

#[test]
fn content_length_body_with_pipelined_extra_bytes_stops_at_the_length() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhelloEXTRA";
    let (head, body, used) = all_same(parse(input, ROOMY, false)).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.content_type(), "text/plain");
    assert_eq!(body, b"hello");
    assert_eq!(used, input.len() - 5);
}

#[test]
fn interim_100_continue_is_skipped() {
    let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    let (head, body, _) = all_same(parse(input, ROOMY, false)).unwrap();
    assert_eq!(head.status, 201);
    assert_eq!(body, b"ok");
}

#[test]
fn chunked_gzip_in_tiny_inflate_window_matches_the_original() {
    let plain: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("m{{i=\"{}\"}} {}\n", i % 97, i).into_bytes())
        .collect();
    let z = gzip(&plain);
    let mut input =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n".to_vec();
    for piece in z.chunks(333) {
        input.extend(format!("{:X}\r\n", piece.len()).as_bytes());
        input.extend(piece);
        input.extend(b"\r\n");
    }
    input.extend(b"0\r\n\r\n");
    let limits = BodyLimits {
        max_body_bytes: 1 << 20,
        max_decoded_bytes: 1 << 22,
    };
    let (head, body, used) = all_same(parse(&input, limits, false)).unwrap();
    assert!(head.gzip);
    assert_eq!(body, plain);
    assert_eq!(used, input.len());
}

#[test]
fn gzip_with_name_field_and_two_members_is_decoded() {
    let a = gzip(b"first member\n");
    // Same member with FNAME set: header flag 8 and a zero-terminated name after byte 10.
    let mut b = gzip(b"second member\n");
    b[3] = 8;
    b.splice(10..10, b"metrics.txt\0".iter().copied());
    let mut input = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        a.len() + b.len()
    )
    .into_bytes();
    input.extend(&a);
    input.extend(&b);
    let (_, body, _) = all_same(parse(&input, ROOMY, false)).unwrap();
    assert_eq!(body, b"first member\nsecond member\n");
}

#[test]
fn a_gzip_body_needs_a_lent_gzip_state_and_the_state_serves_the_next_parser() {
    let plain = b"lent_state_series{i=\"1\"} 1\n".repeat(500);
    let z = gzip(&plain);
    let mut input = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        z.len()
    )
    .into_bytes();
    input.extend(&z);
    let mut first = ResponseParser::with_gzip(1024, GzipState::none());
    let mut second = ResponseParser::with_gzip(1024, GzipState::none());
    let mut slot = GzipState::new(64);
    // Without a state the body fails by name; nothing is decoded.
    first.begin(ROOMY, false);
    let err = parse_in_steps(&mut first, &input, 100, false).unwrap_err();
    assert_eq!(err, Failure::Net(NetError::NoGzipState));
    assert_eq!(NetError::NoGzipState.reason(), "no_gzip_state");
    // The one state, lent to each parser in turn (stopped mid-stream by
    // the first, so reset by the second's begin), decodes both bodies.
    for (which, step) in [(0, 7), (1, 1000), (0, input.len())] {
        let parser = if which == 0 { &mut first } else { &mut second };
        parser.swap_gzip(&mut slot);
        assert!(!slot.is_some(), "the parser holds the state while lent");
        parser.begin(ROOMY, false);
        let half = parse_in_steps(parser, &input[..input.len() / 2], step, false);
        assert!(half.is_err(), "half a body is not a response");
        parser.begin(ROOMY, false);
        let (head, body, _) = parse_in_steps(parser, &input, step, false).unwrap();
        assert!(head.gzip);
        assert_eq!(body, plain);
        parser.swap_gzip(&mut slot);
        assert!(slot.is_some(), "given back");
    }
}

#[test]
fn corrupt_gzip_is_named() {
    let mut z = gzip(b"some exposition text\n");
    let n = z.len();
    z[n - 6] ^= 0xff; // CRC32 in the trailer
    let mut input = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        z.len()
    )
    .into_bytes();
    input.extend(&z);
    let err = all_same(parse(&input, ROOMY, false)).unwrap_err();
    assert_eq!(
        err,
        Failure::Net(NetError::BadGzip {
            what: "CRC32 mismatch"
        })
    );

    let z = gzip(b"some exposition text\n");
    let cut = &z[..z.len() - 3];
    let mut input = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n".to_vec();
    input.extend(cut);
    let err = all_same(parse(&input, ROOMY, true)).unwrap_err();
    assert_eq!(
        err,
        Failure::Net(NetError::BadGzip {
            what: "body ended inside the gzip stream"
        })
    );
}

#[test]
fn malformed_responses_fail_with_named_errors() {
    let cases: [(&[u8], NetError); 7] = [
        (
            b"HTTP/2 200 OK\r\n\r\n",
            NetError::BadHttp { what: "not HTTP/1.x" },
        ),
        (
            b"HTTP/1.1 abc OK\r\n\r\n",
            NetError::BadHttp {
                what: "invalid status code",
            },
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            NetError::BadHttp {
                what: "conflicting Content-Length headers",
            },
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            NetError::BadHttp {
                what: "invalid Content-Length",
            },
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n",
            NetError::UnsupportedEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            NetError::BadHttp {
                what: "invalid chunk size",
            },
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX",
            NetError::BadHttp {
                what: "chunk data not followed by CRLF",
            },
        ),
    ];
    for (input, want) in cases {
        let err = all_same(parse(input, ROOMY, false)).unwrap_err();
        assert_eq!(err, Failure::Net(want), "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn head_larger_than_the_buffer_is_refused() {
    let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..60 {
        input.extend(format!("X-Header-{i}: {}\r\n", "v".repeat(30)).as_bytes());
    }
    input.extend(b"\r\n");
    let err = all_same(parse(&input, ROOMY, false)).unwrap_err();
    assert_eq!(err, Failure::Net(NetError::HeadTooLarge { limit: 1024 }));
}

#[test]
fn errors_are_sticky_until_begin() {
    let mut parser = ResponseParser::new(1024, 64);
    parser.begin(ROOMY, false);
    let mut sink = |_: &ResponseHead, _: &[u8]| -> Result<(), ()> { Ok(()) };
    let first = parser.feed(b"HTTP/9 nonsense\r\n\r\n", &mut sink).unwrap_err();
    let again = parser
        .feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &mut sink)
        .unwrap_err();
    assert_eq!(first, again);
    parser.begin(ROOMY, false);
    assert_eq!(
        parser
            .feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &mut sink)
            .unwrap(),
        Feed::Done { consumed: 38 }
    );
}

#[test]
fn sink_error_stops_the_body() {
    let mut parser = ResponseParser::new(1024, 64);
    parser.begin(ROOMY, false);
    let mut calls = 0;
    let mut sink = |_: &ResponseHead, _: &[u8]| -> Result<(), &'static str> {
        calls += 1;
        Err("sample_limit")
    };
    let r = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", &mut sink);
    assert_eq!(r, Err(Failure::Sink("sample_limit")));
    assert_eq!(calls, 1);
}

#[test]
fn head_request_and_304_have_no_body() {
    let mut parser = ResponseParser::new(1024, 64);
    parser.begin(ROOMY, true);
    let mut sink = |_: &ResponseHead, _: &[u8]| -> Result<(), ()> { panic!("no body expected") };
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    assert_eq!(
        parser.feed(input, &mut sink).unwrap(),
        Feed::Done {
            consumed: input.len()
        }
    );
    parser.begin(ROOMY, false);
    let input = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n";
    assert_eq!(
        parser.feed(input, &mut sink).unwrap(),
        Feed::Done {
            consumed: input.len()
        }
    );
}

#[test]
fn date_header_is_read_as_unix_seconds() {
    let input = b"HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
    let (head, _, _) = all_same(parse(input, ROOMY, false)).unwrap();
    assert_eq!(head.date_s, Some(784_111_777));
    // A leap day, the far future and the epoch, checked against `date -u -d`.
    for (date, unix) in [
        ("Thu, 29 Feb 2024 23:59:60 GMT", 1_709_251_200),
        ("Fri, 31 Dec 9999 00:00:00 GMT", 253_402_214_400),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
    ] {
        let input = format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\ndate:  {date} \r\n\r\n");
        let (head, _, _) = all_same(parse(input.as_bytes(), ROOMY, false)).unwrap();
        assert_eq!(head.date_s, Some(unix), "{date}");
    }
    // Obsolete forms, a wrong zone and garbage are no date, and fail nothing.
    for date in [
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 36 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 28:49:37 GMT",
        "",
    ] {
        let input = format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nDate: {date}\r\n\r\n");
        let (head, _, _) = all_same(parse(input.as_bytes(), ROOMY, false)).unwrap();
        assert_eq!(head.date_s, None, "{date}");
    }
}

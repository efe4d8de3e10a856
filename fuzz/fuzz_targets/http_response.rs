//! Arbitrary bytes as a server's response, fed in arbitrary pieces to the response parser with
//! small limits. It must never panic, never hand the sink more than the decoded limit, and keep
//! its errors sticky.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_agent::net::{BodyLimits, Failure, Feed, ResponseHead, ResponseParser};

fuzz_target!(|data: &[u8]| {
    // Byte 0: piece size; byte 1: limits and HEAD flag. The rest is the response.
    let [step, knobs, response @ ..] = data else {
        return;
    };
    let step = usize::from(*step % 64) + 1;
    let limits = BodyLimits {
        max_body_bytes: 64 << (knobs & 7),
        max_decoded_bytes: 128 << ((knobs >> 3) & 7),
    };
    let head_request = knobs & 0x40 != 0;

    let mut parser = ResponseParser::new(512, 32);
    // Twice: the second round proves `begin` resets everything a failed first round left.
    for _ in 0..2 {
        parser.begin(limits, head_request);
        let mut delivered: u64 = 0;
        let mut sink = |_: &ResponseHead, b: &[u8]| -> Result<(), ()> {
            delivered += b.len() as u64;
            Ok(())
        };
        let mut failed: Option<Failure<()>> = None;
        let mut done = false;
        for piece in response.chunks(step) {
            match parser.feed(piece, &mut sink) {
                Ok(Feed::NeedMore) => {}
                Ok(Feed::Done { consumed }) => {
                    assert!(consumed <= piece.len());
                    done = true;
                    break;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(Failure::Net(e)) = &failed {
            let again = parser.feed(b"HTTP/1.1 200 OK\r\n\r\n", &mut sink);
            assert_eq!(again, Err(Failure::Net(e.clone())), "errors stay sticky");
        }
        if failed.is_none() && !done {
            let _ = parser.finish_at_eof::<()>();
        }
        assert!(delivered <= limits.max_decoded_bytes);
        assert_eq!(delivered, parser.decoded_bytes());
    }
});

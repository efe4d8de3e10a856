//! A stable-toolchain stand-in for `fuzz/fuzz_targets/http_response.rs`: the committed corpus
//! plus deterministic mutations of it go through the same checks as the fuzz target, so a
//! panic in the response parser shows up in `cargo test` even where cargo-fuzz is not installed.

use outpost_agent::net::{BodyLimits, Failure, Feed, ResponseHead, ResponseParser};

/// Same contract as the fuzz target: no panic, never more than the decoded limit, sticky errors.
fn check(parser: &mut ResponseParser, data: &[u8]) {
    let [step, knobs, response @ ..] = data else {
        return;
    };
    let step = usize::from(*step % 64) + 1;
    let limits = BodyLimits {
        max_body_bytes: 64 << (knobs & 7),
        max_decoded_bytes: 128 << ((knobs >> 3) & 7),
    };
    parser.begin(limits, knobs & 0x40 != 0);
    let mut delivered: u64 = 0;
    let mut sink = |_: &ResponseHead, b: &[u8]| -> Result<(), ()> {
        delivered += b.len() as u64;
        Ok(())
    };
    let mut failed = None;
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
        assert_eq!(
            parser.feed(b"HTTP/1.1 200 OK\r\n\r\n", &mut sink),
            Err(Failure::Net(e.clone()))
        );
    }
    if failed.is_none() && !done {
        let _ = parser.finish_at_eof::<()>();
    }
    assert!(delivered <= limits.max_decoded_bytes);
    assert_eq!(delivered, parser.decoded_bytes());
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut XorShift, seed: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(seed);
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(out.len() + 1);
                let b = [b'\r', b'\n', b'0', b'f', b';', b':', b' ', 0x1f, 0x8b][rng.below(9)];
                out.insert(i, b);
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.remove(i);
            }
            _ => {
                let n = rng.below(out.len() + 1);
                out.truncate(n);
            }
        }
    }
}

#[test]
fn corpus_and_mutations_never_panic() {
    let dir = outpost_test_support::repo_path("fuzz/corpus/http_response");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 8,
        "corpus at {} has {} files",
        dir.display(),
        seeds.len()
    );
    let mut parser = ResponseParser::new(512, 32);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut scratch = Vec::new();
    let mut execs = 0;
    for seed in &seeds {
        check(&mut parser, seed);
        execs += 1;
        for _ in 0..10_000 {
            mutate(&mut rng, seed, &mut scratch);
            check(&mut parser, &scratch);
            execs += 1;
        }
    }
    assert_eq!(execs, seeds.len() * 10_001);
}

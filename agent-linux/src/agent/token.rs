//! What each mio event is about. mio hands back a bare `usize`; the loop
//! turns it into a [`Token`] once and matches on that.
//!
//! The encoding: the three fixed sources first, then the status server's
//! connections (a contiguous range, as [`crate::net::HttpServer`] numbers
//! them), then targets, receiver shards and discovery watches interleaved
//! (every third number for each), so no count limits another and a reload
//! or a discovered target that changes one needs no renumbering.

/// How many status connections the server keeps open at once.
pub(super) const STATUS_CONNS: usize = 16;

const SIGNALS: usize = 0;
const RESOLVER: usize = 1;
const LISTENER: usize = 2;
const FIRST_STATUS_CONN: usize = 3;
const FIRST_INTERLEAVED: usize = FIRST_STATUS_CONN + STATUS_CONNS;
/// Targets, shards and watches take turns.
const KINDS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    /// The signal pipe became readable.
    Signals,
    /// The resolver thread has answers.
    Resolver,
    /// The status server's listening socket.
    Listener,
    /// One of the status server's connections, `0..STATUS_CONNS`.
    StatusConn(usize),
    /// Target `i` of [`super::scraping::Scraping::targets`].
    Target(usize),
    /// The receiver connection of shard `i`.
    Shard(usize),
    /// The connection of discovery watch `i` (see [`super::discovery::Discovering`]).
    Watch(usize),
}

impl From<Token> for mio::Token {
    /// Panics only for an index no agent can have (past `usize::MAX / 3`
    /// targets, shards or watches) or a status connection past [`STATUS_CONNS`]:
    /// both are bugs, and two sources sharing a number would be worse.
    fn from(token: Token) -> mio::Token {
        let spread = |i: usize, kind: usize| {
            i.checked_mul(KINDS)
                .and_then(|n| n.checked_add(FIRST_INTERLEAVED + kind))
                .expect("target, shard or watch index fits a mio token")
        };
        mio::Token(match token {
            Token::Signals => SIGNALS,
            Token::Resolver => RESOLVER,
            Token::Listener => LISTENER,
            Token::StatusConn(i) => {
                assert!(i < STATUS_CONNS, "status connection {i} of {STATUS_CONNS}");
                FIRST_STATUS_CONN + i
            }
            Token::Target(i) => spread(i, 0),
            Token::Shard(i) => spread(i, 1),
            Token::Watch(i) => spread(i, 2),
        })
    }
}

impl From<mio::Token> for Token {
    fn from(token: mio::Token) -> Token {
        match token.0 {
            SIGNALS => Token::Signals,
            RESOLVER => Token::Resolver,
            LISTENER => Token::Listener,
            n if n < FIRST_INTERLEAVED => Token::StatusConn(n - FIRST_STATUS_CONN),
            n => {
                let i = (n - FIRST_INTERLEAVED) / KINDS;
                match (n - FIRST_INTERLEAVED) % KINDS {
                    0 => Token::Target(i),
                    1 => Token::Shard(i),
                    _ => Token::Watch(i),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_survives_the_trip_through_mio() {
        let mut tokens = vec![Token::Signals, Token::Resolver, Token::Listener];
        tokens.extend((0..STATUS_CONNS).map(Token::StatusConn));
        for i in [
            0,
            1,
            2,
            999,
            1_000,
            999_999,
            1_000_000,
            (usize::MAX - FIRST_INTERLEAVED) / KINDS - 1,
        ] {
            tokens.extend([Token::Target(i), Token::Shard(i), Token::Watch(i)]);
        }
        let mut seen = std::collections::HashSet::new();
        for t in tokens {
            let raw = mio::Token::from(t);
            assert!(seen.insert(raw.0), "{t:?} shares {} with another token", raw.0);
            assert_eq!(Token::from(raw), t);
        }
    }

    #[test]
    fn the_status_server_gets_a_contiguous_range() {
        let first = mio::Token::from(Token::StatusConn(0)).0;
        for i in 0..STATUS_CONNS {
            assert_eq!(mio::Token::from(Token::StatusConn(i)).0, first + i);
        }
        assert_eq!(Token::from(mio::Token(first + STATUS_CONNS)), Token::Target(0));
    }

    #[test]
    #[should_panic(expected = "status connection 16 of 16")]
    fn a_status_connection_past_the_bound_is_a_bug() {
        let _ = mio::Token::from(Token::StatusConn(STATUS_CONNS));
    }
}

//! SIGTERM, SIGINT and SIGHUP as ordinary loop events, through
//! signal-hook's self-pipe: its handler only records the signal and writes
//! to the pipe (saving and restoring `errno`), and the pipe is closed with
//! the agent.

use std::io;

use mio::{Interest, Registry};
use signal_hook_mio::v1_0::Signals as SignalPipe;

use super::token::Token;

/// What the signals received since the last look ask the loop to do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Requests {
    /// SIGHUP: read the plan again.
    pub reload: bool,
    /// SIGTERM or SIGINT: shut down (the signal's number).
    pub stop: Option<libc::c_int>,
}

pub(super) struct Signals {
    pipe: SignalPipe,
    requests: Requests,
}

impl Signals {
    /// Installs the handlers and registers the pipe under [`Token::Signals`].
    pub(super) fn install(registry: &Registry) -> io::Result<Signals> {
        let mut pipe = SignalPipe::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
        registry.register(&mut pipe, Token::Signals.into(), Interest::READABLE)?;
        Ok(Signals {
            pipe,
            requests: Requests::default(),
        })
    }

    /// Reads what arrived; called on a [`Token::Signals`] event. A signal
    /// that came more than once counts once.
    pub(super) fn receive(&mut self) {
        for signal in self.pipe.pending() {
            match signal {
                libc::SIGHUP => self.requests.reload = true,
                libc::SIGTERM | libc::SIGINT => self.requests.stop = self.requests.stop.or(Some(signal)),
                _ => {}
            }
        }
    }

    /// What was asked since the last call.
    pub(super) fn take(&mut self) -> Requests {
        std::mem::take(&mut self.requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use rustix::process::{getpid, kill_process, Signal};
    use std::time::{Duration, Instant};

    /// Polls until the signal pipe is readable, then reads it.
    fn receive_within(poll: &mut Poll, signals: &mut Signals, limit: Duration) {
        let mut events = Events::with_capacity(4);
        let started = Instant::now();
        while started.elapsed() < limit {
            poll.poll(&mut events, Some(Duration::from_millis(50))).unwrap();
            if events.iter().any(|e| Token::from(e.token()) == Token::Signals) {
                signals.receive();
                return;
            }
        }
        panic!("no signal event within {limit:?}");
    }

    #[test]
    fn hup_asks_for_a_reload_and_term_for_a_stop_once_each() {
        let mut poll = Poll::new().unwrap();
        let mut signals = Signals::install(poll.registry()).unwrap();
        assert_eq!(signals.take(), Requests::default());
        kill_process(getpid(), Signal::HUP).unwrap();
        kill_process(getpid(), Signal::HUP).unwrap();
        receive_within(&mut poll, &mut signals, Duration::from_secs(5));
        assert_eq!(
            signals.take(),
            Requests {
                reload: true,
                stop: None
            }
        );
        assert_eq!(signals.take(), Requests::default(), "taken once");
        kill_process(getpid(), Signal::TERM).unwrap();
        receive_within(&mut poll, &mut signals, Duration::from_secs(5));
        assert_eq!(signals.take().stop, Some(libc::SIGTERM));
    }
}

//! Why the agent did not start, by kind: the exit code and the operator's
//! next step differ between them.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::wal::{DiskWalError, LockError};

/// Why the agent did not start; each has its own exit code.
#[derive(Debug)]
pub enum StartError {
    /// Another process holds the WAL directory.
    WalLocked(LockError),
    /// The WAL directory cannot be created, read or written.
    Wal(DiskWalError),
    /// A plan field the agent cannot use: a target, the receiver, a TLS
    /// file, a node collector option.
    Plan(String),
    /// The status server cannot listen on `--listen`.
    Listen { addr: SocketAddr, err: io::Error },
    /// The event loop cannot be set up (`what` failed).
    Setup { what: &'static str, err: io::Error },
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::WalLocked(_) => crate::cli::EXIT_WAL_LOCKED,
            _ => 1,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::WalLocked(e) => e.fmt(f),
            StartError::Wal(e) => e.fmt(f),
            StartError::Plan(e) => f.write_str(e),
            StartError::Listen { addr, err } => write!(f, "--listen {addr}: {err}"),
            StartError::Setup { what, err } => write!(f, "cannot {what}: {err}"),
        }
    }
}

impl std::error::Error for StartError {}

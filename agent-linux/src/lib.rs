//! outpost-agent: the Linux shell around outpost-core. All I/O lives here:
//! the mio event loop, sockets and TLS, `/proc` and `/sys`, the on-disk WAL,
//! the status endpoints and signals.

pub mod agent;
pub mod cli;
pub mod clock;
pub mod collectors;
pub mod log;
pub mod net;
pub mod wal;

//! Sockets, HTTP/1.1 and TLS for scrapes, remote write and the status server.
//!
//! - [`HttpClientConn`]: one outgoing keep-alive connection (plain or rustls), driven by the
//!   runtime's mio loop; used for scrapes (gzip accepted, bounded inflate) and remote-write POSTs.
//! - [`ResponseParser`]: the sans-IO response reader under it (fuzzed by `fuzz/http_response`).
//! - [`client_config`]: rustls client configuration; verification on unless explicitly skipped.
//! - [`HttpServer`]: the status endpoints.

mod client;
mod error;
mod response;
mod server;
mod tls;

pub use client::{ConnBuffers, HttpClientConn, Progress, Request};
pub use error::{Failure, NetError, Phase};
pub use response::{BodyLimits, BodySink, Feed, GzipState, ResponseHead, ResponseParser};
pub use server::{HttpServer, Responder, Response, ServerLimits, ServerStats};
pub use tls::{client_config, TlsError};

//! Sockets, HTTP/1.1 and TLS for scrapes, remote write and the status server.

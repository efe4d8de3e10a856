//! HttpClientConn over TLS against a rustls server thread, with certificates made by rcgen.

mod net_support;
mod tls_support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use net_support::*;
use outpost_agent::net::{client_config, HttpClientConn, NetError, TlsError};
use rcgen::KeyPair;
use rustls::{CertificateError, ServerConnection, StreamOwned};
use tls_support::{make_ca, make_leaf, server_config, Ca, Leaf};

/// Serves HTTPS on loopback: one request per connection, answer "secure\n".
fn tls_server(server: &Leaf, client_ca: Option<&Ca>) -> TestServer {
    let config = server_config(server, client_ca);
    TestServer::start(move |s: TcpStream| {
        let conn = ServerConnection::new(config.clone()).unwrap();
        let mut tls = StreamOwned::new(conn, s);
        // A failed handshake shows up here as an error; the client side asserts on it.
        if read_request(&mut tls).is_some() {
            write_all(
                &mut tls,
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nsecure\n",
            );
            tls.conn.send_close_notify();
            let _ = tls.conn.complete_io(&mut tls.sock);
        }
    })
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

struct Fixture {
    dir: tempfile::TempDir,
    server: Leaf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("outpost test CA");
    let server = make_leaf(&ca, &["localhost", "127.0.0.1"]);
    write_file(dir.path(), "ca.pem", &ca.pem);
    Fixture { dir, server }
}

impl Fixture {
    /// A client trusting the test CA that presents `certificate` when given,
    /// read from files as the agent reads its own.
    fn client(&self, certificate: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        let ca = self.dir.path().join("ca.pem");
        let Some(leaf) = certificate else {
            return client_config(Some(&ca), None, None, false).unwrap();
        };
        let cert = write_file(self.dir.path(), "client.pem", &leaf.pem);
        let key = write_file(self.dir.path(), "client.key", &leaf.key_pem);
        client_config(Some(&ca), Some(&cert), Some(&key), false).unwrap()
    }
}

fn exchange_over_tls(
    server: &TestServer,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> (
    Result<outpost_agent::net::ResponseHead, outpost_agent::net::Failure<&'static str>>,
    Vec<u8>,
) {
    let mut conn = HttpClientConn::new(server.addr, Some(config), name, CONN, small_bufs()).unwrap();
    let mut driver = Driver::new();
    driver.exchange(&mut conn, &get("/metrics", "localhost", 5000))
}

#[test]
fn verification_succeeds_with_the_right_ca() {
    let f = fixture();
    let server = tls_server(&f.server, None);
    let config = f.client(None);
    let (res, body) = exchange_over_tls(&server, config, "localhost");
    assert_eq!(res.unwrap().status, 200);
    assert_eq!(body, b"secure\n");
}

#[test]
fn verification_by_ip_address_name() {
    let f = fixture();
    let server = tls_server(&f.server, None);
    let config = f.client(None);
    let (res, body) = exchange_over_tls(&server, config, "127.0.0.1");
    assert_eq!(res.unwrap().status, 200);
    assert_eq!(body, b"secure\n");
}

#[test]
fn wrong_ca_fails_the_handshake_with_unknown_issuer() {
    let f = fixture();
    let server = tls_server(&f.server, None);
    let other = make_ca("some other CA");
    let other_path = write_file(f.dir.path(), "other.pem", &other.pem);
    let config = client_config(Some(&other_path), None, None, false).unwrap();
    let (res, body) = exchange_over_tls(&server, config, "localhost");
    let err = net_err(res);
    assert_eq!(
        err,
        NetError::TlsHandshake(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
    );
    assert_eq!(err.reason(), "tls_handshake_failed");
    assert!(
        err.to_string()
            .starts_with("TLS handshake failed: invalid peer certificate"),
        "{err}"
    );
    assert!(body.is_empty());
}

#[test]
fn default_webpki_roots_do_not_trust_a_private_ca() {
    let f = fixture();
    let server = tls_server(&f.server, None);
    let config = client_config(None, None, None, false).unwrap();
    let (res, _) = exchange_over_tls(&server, config, "localhost");
    assert_eq!(
        net_err(res),
        NetError::TlsHandshake(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
    );
}

#[test]
fn wrong_server_name_fails_the_handshake() {
    let f = fixture();
    let server = tls_server(&f.server, None);
    let config = f.client(None);
    let (res, _) = exchange_over_tls(&server, config, "receiver.cluster-01.example");
    match net_err(res) {
        NetError::TlsHandshake(rustls::Error::InvalidCertificate(e)) => {
            assert!(
                matches!(
                    e,
                    CertificateError::NotValidForNameContext { .. } | CertificateError::NotValidForName
                ),
                "{e:?}"
            )
        }
        other => panic!("expected a name mismatch, got {other:?}"),
    }
}

#[test]
fn insecure_skip_verify_accepts_an_untrusted_certificate() {
    let f = fixture();
    let server = tls_server(&f.server, None);
    let config = client_config(None, None, None, true).unwrap();
    let (res, body) = exchange_over_tls(&server, config, "any.name.example");
    assert_eq!(res.unwrap().status, 200);
    assert_eq!(body, b"secure\n");
}

#[test]
fn mtls_server_refuses_a_client_without_certificate() {
    let f = fixture();
    let client_ca = make_ca("tenant-a client CA");
    let server = tls_server(&f.server, Some(&client_ca));
    let config = f.client(None);
    let (res, body) = exchange_over_tls(&server, config, "localhost");
    let err = net_err(res);
    assert_eq!(
        err,
        NetError::TlsHandshake(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired
        ))
    );
    assert!(body.is_empty());
}

#[test]
fn mtls_succeeds_with_the_client_certificate() {
    let f = fixture();
    let client_ca = make_ca("tenant-a client CA");
    let client = make_leaf(&client_ca, &["tenant-a.outpost"]);
    let server = tls_server(&f.server, Some(&client_ca));
    let config = f.client(Some(&client));
    let (res, body) = exchange_over_tls(&server, config, "localhost");
    assert_eq!(res.unwrap().status, 200);
    assert_eq!(body, b"secure\n");
}

#[test]
fn mtls_with_a_certificate_from_another_ca_is_refused() {
    let f = fixture();
    let client_ca = make_ca("tenant-a client CA");
    let intruder_ca = make_ca("tenant-b client CA");
    let intruder = make_leaf(&intruder_ca, &["tenant-b.outpost"]);
    let server = tls_server(&f.server, Some(&client_ca));
    let config = f.client(Some(&intruder));
    let (res, _) = exchange_over_tls(&server, config, "localhost");
    assert!(matches!(
        net_err(res),
        NetError::TlsHandshake(rustls::Error::AlertReceived(_))
    ));
}

#[test]
fn config_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let err = client_config(Some(&missing), None, None, false).unwrap_err();
    assert!(matches!(err, TlsError::Pem { ref path, .. } if *path == missing));
    assert!(
        err.to_string().starts_with(&missing.display().to_string()),
        "{err}"
    );

    let junk = write_file(dir.path(), "junk.pem", "not a certificate\n");
    let err = client_config(Some(&junk), None, None, false).unwrap_err();
    assert!(
        err.to_string().contains("junk.pem") && err.to_string().contains("no CERTIFICATE"),
        "{err}"
    );

    let ca = make_ca("ca");
    let cert = write_file(dir.path(), "cert.pem", &ca.pem);
    let err = client_config(None, Some(&cert), None, false).unwrap_err();
    assert!(matches!(err, TlsError::ClientCertWithoutKey));

    let other_key = write_file(
        dir.path(),
        "other.key",
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let err = client_config(None, Some(&cert), Some(&other_key), false).unwrap_err();
    assert!(matches!(err, TlsError::Config { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cert.pem") && err.to_string().contains("other.key"),
        "{err}"
    );
}

#[test]
fn keep_alive_over_tls_uses_one_handshake_for_three_requests() {
    let f = fixture();
    let config = server_config(&f.server, None);
    let server = TestServer::start(move |s: TcpStream| {
        let mut tls = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), s);
        let mut n = 0;
        while read_request(&mut tls).is_some() {
            n += 1;
            let body = format!("tls request {n}\n");
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            if !write_all(&mut tls, resp.as_bytes()) {
                break;
            }
        }
    });
    let client = f.client(None);
    let mut conn = HttpClientConn::new(server.addr, Some(client), "localhost", CONN, small_bufs()).unwrap();
    let mut driver = Driver::new();
    for i in 1..=3 {
        let (res, body) = driver.exchange(&mut conn, &get("/metrics", "localhost", 5000));
        assert_eq!(res.unwrap().status, 200);
        assert_eq!(String::from_utf8(body).unwrap(), format!("tls request {i}\n"));
    }
    assert_eq!(conn.connects(), 1);
    assert_eq!(server.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

//! Where the agent connects: the receiver's URL, scrape targets as
//! `host:port` with the node variables filled in, and the TLS settings of
//! either. Names are resolved off the loop (see [`super::resolver`]).

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::Arc;

use outpost_core::plan::{self, Plan, Scheme};
use outpost_core::url::{parse_host_port, Url, UrlError};
use rustls::ClientConfig;

use super::resolver::Name;
use crate::cli::RunArgs;
use crate::log;

/// A parsed `http(s)://host[:port]/path` URL.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub https: bool,
    pub host: String,
    /// `Host` header: the URL's host and port as written.
    pub authority: String,
    pub path: String,
    pub name: Name,
}

impl Endpoint {
    pub(super) fn parse(url: &str) -> Result<Endpoint, String> {
        let u = Url::parse(url).map_err(|e| match e {
            // Not repeated in the log: the URL holds the secret.
            UrlError::Credentials => format!("url: {e}"),
            e => format!("url {url}: {e}"),
        })?;
        Ok(Endpoint {
            https: u.scheme == Scheme::Https,
            name: Name::new(u.host, u.port),
            host: u.host.to_string(),
            authority: u.authority.to_string(),
            path: u.request_target().to_string(),
        })
    }
}

/// A target's `host[:port]` as host and port.
pub(super) fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let hp = parse_host_port(authority).map_err(|e| e.to_string())?;
    Ok((hp.host.to_string(), hp.port.unwrap_or(default_port)))
}

/// Fills in `${NODE_NAME}` and `${NODE_IP}`. An IPv6 node IP goes in
/// brackets (`[fd00::7]:9100`), as Prometheus writes such an address in
/// its `instance` label.
pub(super) fn fill_node_vars(s: &str, args: &RunArgs) -> String {
    let ip = if args.node_ip.parse::<Ipv6Addr>().is_ok() {
        format!("[{}]", args.node_ip)
    } else {
        args.node_ip.clone()
    };
    s.replace("${NODE_NAME}", &args.node_name)
        .replace("[${NODE_IP}]", &ip)
        .replace("${NODE_IP}", &ip)
}

/// The rustls client configuration of an endpoint: verification on unless
/// the plan says `insecure_skip_verify`, which is logged.
pub(super) fn tls_config(plan: &Plan, tls: &Option<plan::Tls>) -> Result<Option<Arc<ClientConfig>>, String> {
    let t = tls.clone().unwrap_or(plan::Tls {
        ca_file: None,
        cert_file: None,
        key_file: None,
        server_name: None,
        insecure_skip_verify: false,
    });
    let path = |id: Option<plan::StrId>| id.map(|i| PathBuf::from(plan.str(i)));
    let (ca, cert, key) = (path(t.ca_file), path(t.cert_file), path(t.key_file));
    if t.insecure_skip_verify {
        log::warn(
            "TLS server verification is OFF for an endpoint (insecure_skip_verify)",
            &[],
        );
    }
    crate::net::client_config(
        ca.as_deref(),
        cert.as_deref(),
        key.as_deref(),
        t.insecure_skip_verify,
    )
    .map(Some)
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_targets_split_into_host_port_and_path() {
        let e = Endpoint::parse("http://127.0.0.1:19090/api/v1/write").unwrap();
        assert!(!e.https);
        assert_eq!(
            (e.host.as_str(), e.name.port, e.path.as_str()),
            ("127.0.0.1", 19090, "/api/v1/write")
        );
        assert_eq!(e.authority, "127.0.0.1:19090");
        assert_eq!(e.name.addr, Some("127.0.0.1:19090".parse().unwrap()));
        assert!(e.name.literal);
        let e = Endpoint::parse("http://receive.example:19291/api/v1/receive").unwrap();
        assert_eq!(
            (e.name.addr, e.name.literal),
            (None, false),
            "names wait for the resolver"
        );
        let e = Endpoint::parse("https://[::1]/receive").unwrap();
        assert_eq!((e.host.as_str(), e.name.port), ("::1", 443));
        assert!(Endpoint::parse("ftp://x/").unwrap_err().contains("scheme"));
        assert_eq!(
            split_host_port("node:9100", 80).unwrap(),
            ("node".to_string(), 9100)
        );
        assert_eq!(split_host_port("node", 443).unwrap(), ("node".to_string(), 443));
        assert!(split_host_port("node:x", 80).unwrap_err().contains("bad port x"));
        assert_eq!(
            split_host_port("[fd00::7]:9100", 80).unwrap(),
            ("fd00::7".to_string(), 9100)
        );
        assert!(split_host_port("user@node:9100", 80)
            .unwrap_err()
            .contains("host user@node"));
    }

    fn args(node_ip: &str) -> RunArgs {
        RunArgs {
            plan: "/p".into(),
            wal_dir: None,
            wal_lock_wait_ms: 0,
            listen: "127.0.0.1:1".parse().unwrap(),
            node_name: "n1".into(),
            node_ip: node_ip.into(),
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
            log_format: log::Format::Logfmt,
            log_level: log::Level::Info,
            kube_service: None,
            service_account_dir: "/nonexistent".into(),
        }
    }

    #[test]
    fn node_variables_are_filled_in() {
        let v4 = args("10.0.0.7");
        assert_eq!(fill_node_vars("${NODE_IP}:10250", &v4), "10.0.0.7:10250");
        assert_eq!(fill_node_vars("${NODE_NAME}", &v4), "n1");
        let v6 = args("fd00::7");
        let target = fill_node_vars("${NODE_IP}:9100", &v6);
        assert_eq!(target, "[fd00::7]:9100", "as Prometheus's instance label");
        assert_eq!(
            split_host_port(&target, 80).unwrap(),
            ("fd00::7".to_string(), 9100)
        );
        assert_eq!(fill_node_vars("[${NODE_IP}]:9100", &v6), "[fd00::7]:9100");
    }
}

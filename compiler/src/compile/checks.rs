//! Checks of values that mean the same for every agent: the receiver, TLS
//! and secret files, fleet-wide names, scrape targets. They report; they
//! build nothing.

use super::context::Cx;
use super::defaults::{DEFAULT_NODE_JOB, NODE_VARS};
use super::names::is_header_name;
use crate::diag::Diagnostic;
use crate::spec::{Fleet, Scope, TlsSpec};
use crate::tree::DocPath;
use outpost_core::plan::Scheme;
use outpost_core::url::{parse_host_port, HostPort, Url, UrlError};
use std::collections::HashMap;

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

pub(super) fn check_receiver(cx: &mut Cx, fleet: &Fleet) {
    let r = &fleet.receiver;
    let path = DocPath::root().at("receiver");
    match Url::parse(&r.url) {
        Ok(url) => {
            if url.scheme == Scheme::Http && !is_loopback(url.host) {
                cx.push(
                    Diagnostic::warning(
                        "plaintext-receiver",
                        path.at("url"),
                        format!("samples and tenant headers to `{}` travel unencrypted and unauthenticated", url.host),
                    )
                    .label("plain http:// to a remote host")
                    .help("use https:// with `tls.ca_file` (and `cert_file`/`key_file` for mTLS) so no site can write as another tenant"),
                );
            }
        }
        // The message does not repeat the URL: it holds the secret.
        Err(UrlError::Credentials) => cx.push(
            Diagnostic::error("url-credentials", path.at("url"), "the receiver URL carries credentials (`user@` or `user:password@`)")
                .label("credentials in the URL")
                .help("plans must not carry secrets: remove them from the URL and set `auth.basic` (`username`, `password_file`) or `auth.bearer_token_file`"),
        ),
        Err(e) => {
            let message = match e {
                UrlError::Scheme | UrlError::NoHost => {
                    format!("`{}` is not an http:// or https:// URL with a host", r.url)
                }
                e => format!("`{}` is not a usable receiver URL: {e}", r.url),
            };
            cx.push(
                Diagnostic::error("bad-url", path.at("url"), message)
                    .label("not a receiver URL")
                    .help("e.g. `https://thanos-receive.example.net:19291/api/v1/receive`"),
            );
        }
    }
    if let Some(h) = &r.tenant_header {
        if !h.is_empty() && !is_header_name(h) {
            cx.push(
                Diagnostic::error(
                    "bad-header-name",
                    path.at("tenant_header"),
                    format!("`{h}` is not a valid HTTP header name"),
                )
                .label("invalid header name")
                .help("Thanos Receive reads `THANOS-TENANT`; Mimir and Cortex read `X-Scope-OrgID`"),
            );
        }
    }
    if let Some(t) = &r.remote_timeout {
        if cx.duration(t, &path.at("remote_timeout")) == Some(0) {
            cx.push(
                Diagnostic::error(
                    "zero-duration",
                    path.at("remote_timeout"),
                    "remote_timeout must be more than 0",
                )
                .label("zero"),
            );
        }
    }
    if let Some(tls) = &r.tls {
        check_tls(cx, tls, &path.at("tls"));
    }
    if let Some(auth) = &r.auth {
        let apath = path.at("auth");
        check_bearer_token(cx, &auth.bearer_token, &auth.bearer_token_file, &apath);
        if let Some(b) = &auth.basic {
            let bpath = apath.at("basic");
            check_secret_file(
                cx,
                &bpath,
                ("password", &b.password),
                ("password_file", &b.password_file),
            );
            if b.password_file.is_none() && b.password.is_none() {
                cx.push(
                    Diagnostic::error("missing-key", bpath.clone(), "basic auth needs `password_file`")
                        .on_key()
                        .label("no password file")
                        .help("add `password_file: /etc/outpost/receiver-password`"),
                );
            }
            if auth.bearer_token_file.is_some() || auth.bearer_token.is_some() {
                cx.push(
                    Diagnostic::error(
                        "conflicting-auth",
                        bpath,
                        "both a bearer token and basic auth are set",
                    )
                    .on_key()
                    .label("second credential")
                    .help("keep one of `bearer_token_file` and `basic`"),
                );
            }
        }
    }
}

/// `bearer_token` / `bearer_token_file` under `path` (receiver auth or a job).
pub(super) fn check_bearer_token(
    cx: &mut Cx,
    token: &Option<String>,
    token_file: &Option<String>,
    path: &DocPath,
) {
    check_secret_file(
        cx,
        path,
        ("bearer_token", token),
        ("bearer_token_file", token_file),
    );
}

/// A secret is read on the agent from a file at an absolute path; one
/// written inline is refused, since plans must not carry secrets.
fn check_secret_file(
    cx: &mut Cx,
    path: &DocPath,
    (inline_key, inline): (&str, &Option<String>),
    (file_key, file): (&str, &Option<String>),
) {
    if inline.is_some() {
        cx.push(
            Diagnostic::error(
                "inline-secret",
                path.at(inline_key),
                "secrets are never written into the spec or the plan",
            )
            .on_key()
            .label("inline secret")
            .help(format!(
                "put the secret in a file mounted on the agent and set `{file_key}` to its path"
            )),
        );
    }
    if let Some(f) = file {
        cx.file_path(f, &path.at(file_key));
    }
}

pub(super) fn check_tls(cx: &mut Cx, tls: &TlsSpec, path: &DocPath) {
    for (key, value) in [
        ("ca_file", &tls.ca_file),
        ("cert_file", &tls.cert_file),
        ("key_file", &tls.key_file),
    ] {
        if let Some(v) = value {
            cx.file_path(v, &path.at(key));
        }
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => cx.push(
            Diagnostic::error(
                "incomplete-mtls",
                path.at("cert_file"),
                "`cert_file` is set without `key_file`",
            )
            .on_key()
            .label("client certificate without its key")
            .help("mTLS needs both; add `key_file` with the client key's path"),
        ),
        (None, Some(_)) => cx.push(
            Diagnostic::error(
                "incomplete-mtls",
                path.at("key_file"),
                "`key_file` is set without `cert_file`",
            )
            .on_key()
            .label("client key without its certificate")
            .help("mTLS needs both; add `cert_file` with the client certificate's path"),
        ),
        _ => {}
    }
    if tls.insecure_skip_verify {
        cx.push(
            Diagnostic::warning(
                "insecure-tls",
                path.at("insecure_skip_verify"),
                "server certificates are not verified",
            )
            .label("verification off")
            .help("set `ca_file` to the CA that signed the server's certificate instead"),
        );
    }
}

pub(super) fn check_fleet_names(cx: &mut Cx, fleet: &Fleet) {
    let root = DocPath::root();
    if fleet.clusters.is_empty() {
        cx.push(
            Diagnostic::error("no-clusters", root.at("clusters"), "the fleet has no clusters")
                .on_key()
                .label("empty")
                .help("add at least one cluster with a `name` and a `role`"),
        );
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (ci, c) in fleet.clusters.iter().enumerate() {
        let path = root.at("clusters").at(ci);
        cx.dns_label(&c.name, &path.at("name"), "cluster name");
        if let Some(first) = names.insert(&c.name, ci) {
            cx.push(
                Diagnostic::error(
                    "duplicate-name",
                    path.at("name"),
                    format!("cluster `{}` is already defined at clusters[{first}]", c.name),
                )
                .label("duplicate")
                .help("cluster names must be unique across the fleet"),
            );
        }
        if c.role.is_empty() {
            cx.push(
                Diagnostic::error("empty-value", path.at("role"), "role must not be empty")
                    .label("empty")
                    .help("e.g. `edge`"),
            );
        }
    }
    let mut jobs: HashMap<&str, usize> = HashMap::new();
    for (ji, j) in fleet.scrape_jobs.iter().enumerate() {
        let path = root.at("scrape_jobs").at(ji);
        if j.name.is_empty() {
            cx.push(
                Diagnostic::error("empty-value", path.at("name"), "job name must not be empty")
                    .label("empty"),
            );
        }
        if let Some(first) = jobs.insert(&j.name, ji) {
            cx.push(
                Diagnostic::error(
                    "duplicate-name",
                    path.at("name"),
                    format!("job `{}` is already defined at scrape_jobs[{first}]", j.name),
                )
                .label("duplicate")
                .help("job names must be unique; they become the `job` label"),
            );
        }
        if fleet
            .node
            .as_ref()
            .is_some_and(|n| n.job.as_deref().unwrap_or(DEFAULT_NODE_JOB) == j.name)
        {
            cx.push(
                Diagnostic::error(
                    "duplicate-name",
                    path.at("name"),
                    format!("job `{}` is also the node collectors' job", j.name),
                )
                .label("duplicate")
                .help("rename the job or set `node.job`"),
            );
        }
    }
}

pub(super) fn check_target(cx: &mut Cx, target: &str, path: &DocPath, scope: Scope) {
    let mut rest = target.to_string();
    for var in NODE_VARS {
        if rest.contains(var) {
            if scope == Scope::Cluster {
                cx.push(
                    Diagnostic::error("node-var-in-cluster-job", path.clone(), format!("`{var}` has no value in a cluster-scope job"))
                        .label("no node here")
                        .help("the cluster-role agent does not run on a chosen node; use `scope: node` or a Service name"),
                );
            }
            rest = rest.replace(var, "node");
        }
    }
    // The shared parser allows no `$`, `{` or `}` in a host, so a variable
    // other than the two above is refused here too.
    let ok = matches!(parse_host_port(&rest), Ok(HostPort { port: Some(_), .. }));
    if !ok {
        cx.push(
            Diagnostic::error("bad-target", path.clone(), format!("`{target}` is not a `host:port` target"))
                .label("not host:port")
                .help("write targets as `host:port` without scheme or path (those are the job's `scheme` and `path`); only ${NODE_NAME} and ${NODE_IP} are substituted"),
        );
    }
}

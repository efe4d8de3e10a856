//! One `remote_write` entry (or the operator's `remoteWrite`) to the spec's
//! `receiver`, `defaults.queue` and `defaults.write_relabel`.

use super::auth::{inline_secret, secret_ref_file, tls};
use super::keys::Keys;
use super::read::{Findings, MapView};
use super::relabel::rules;
use crate::spec::{AuthSpec, BasicAuthSpec, QueueSpec, ReceiverSpec, RelabelSpec};
use crate::tree::DocPath;

/// Headers receivers read the tenant from: Thanos Receive's and Mimir/Cortex's.
const TENANT_HEADERS: [&str; 2] = ["THANOS-TENANT", "X-Scope-OrgID"];

pub struct RemoteWrite {
    pub receiver: ReceiverSpec,
    pub queue: Option<QueueSpec>,
    pub write_relabel: Vec<RelabelSpec>,
    /// The tenant header's value and place, when the config sends one.
    pub tenant: Option<(String, DocPath)>,
}

pub fn remote_write(mut m: MapView, keys: Keys, f: &mut Findings) -> Option<RemoteWrite> {
    let k = |s: &str| keys.name(s);
    let url = m.text("url", f);
    let mut receiver = ReceiverSpec {
        url: url.clone().unwrap_or_default(),
        tenant_header: None,
        remote_timeout: m.text(&k("remote_timeout"), f),
        tls: m.map(&k("tls_config"), f).map(|t| tls(t, keys, "receiver", f)),
        auth: None,
    };
    let mut tenant = None;
    let mut auth = AuthSpec::default();
    for (name, value, path) in m.string_map("headers", f) {
        if let Some(h) = TENANT_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(&name)) {
            receiver.tenant_header = Some(h.to_string());
            tenant = Some((value, path));
        } else if name.eq_ignore_ascii_case("authorization") {
            match value.split_once(' ') {
                Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => {
                    auth.bearer_token_file = Some(inline_secret(f, path, "receiver-bearer-token"));
                }
                _ => f.not_imported(path, "the receiver authenticates with a bearer token, basic auth or a client certificate; this header is neither a bearer token nor sent as is"),
            }
        } else {
            f.not_imported(path, "outpost sends no custom headers to the receiver");
        }
    }
    if let Some(file) = m.file(&k("bearer_token_file"), f) {
        auth.bearer_token_file = Some(file);
    }
    if let Some((_, path)) = m.get(&k("bearer_token")) {
        auth.bearer_token_file = Some(inline_secret(f, path, "receiver-bearer-token"));
    }
    if let Some(mut a) = m.map("authorization", f) {
        let kind = a.text("type", f).unwrap_or_else(|| "Bearer".into());
        if !kind.eq_ignore_ascii_case("bearer") {
            f.not_imported(
                a.path.at("type"),
                format!("authorization type `{kind}`: outpost sends bearer tokens only"),
            );
        }
        if let Some(file) = a.file(&k("credentials_file"), f) {
            auth.bearer_token_file = Some(file);
        }
        match keys {
            Keys::Snake => {
                if let Some((_, path)) = a.get("credentials") {
                    auth.bearer_token_file = Some(inline_secret(f, path, "receiver-bearer-token"));
                }
            }
            Keys::Camel => {
                if let Some(r) = a.map("credentials", f) {
                    auth.bearer_token_file = secret_ref_file(r, f);
                }
            }
        }
        a.rest(f, |_| "not a key of `authorization`".into());
    }
    if let Some(mut b) = m.map(&k("basic_auth"), f) {
        let username = match keys {
            Keys::Snake => b.text("username", f),
            Keys::Camel => {
                if let Some((_, path)) = b.get("username") {
                    f.not_imported(path, "the spec holds the user name itself, not a Secret reference: write `receiver.auth.basic.username`");
                }
                None
            }
        };
        let mut password_file = b.file(&k("password_file"), f);
        match keys {
            Keys::Snake => {
                if let Some((_, path)) = b.get("password") {
                    password_file = Some(inline_secret(f, path, "receiver-password"));
                }
            }
            Keys::Camel => {
                if let Some(r) = b.map("password", f) {
                    password_file = secret_ref_file(r, f);
                }
            }
        }
        if let Some(username) = username {
            auth.basic = Some(BasicAuthSpec {
                username,
                password_file,
                password: None,
            });
        }
        b.rest(f, |_| "not a key of basic auth".into());
    }
    if auth != AuthSpec::default() {
        receiver.auth = Some(auth);
    }
    let queue = m.map(&k("queue_config"), f).map(|q| queue(q, keys, f));
    let write_relabel = rules(m.list(&k("write_relabel_configs"), f), keys, f)
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    m.rest(f, |key| match key {
        "name" => "outpost names its queue `outpost` in its own metrics (`remote_name`)".into(),
        "send_exemplars" | "sendExemplars" | "send_native_histograms" | "sendNativeHistograms" => {
            "outpost sends samples only (remote write 1.0, no exemplars or native histograms)".into()
        }
        "metadata_config" | "metadataConfig" => "outpost sends no metadata".into(),
        "sigv4" | "oauth2" | "azuread" | "googleIam" => {
            "the receiver authenticates with a bearer token, basic auth or a client certificate".into()
        }
        "proxy_url" | "proxyUrl" | "no_proxy" | "proxy_from_environment" | "proxy_connect_header" => {
            "outpost connects to the receiver directly".into()
        }
        _ => "outpost's receiver has no such setting".into(),
    });
    url.map(|_| RemoteWrite {
        receiver,
        queue,
        write_relabel,
        tenant,
    })
}

fn queue(mut q: MapView, keys: Keys, f: &mut Findings) -> QueueSpec {
    let k = |s: &str| keys.name(s);
    let spec = QueueSpec {
        capacity: q.number("capacity", f),
        min_shards: q.number(&k("min_shards"), f),
        max_shards: q.number(&k("max_shards"), f),
        max_samples_per_send: q.number(&k("max_samples_per_send"), f),
        batch_send_deadline: q.text(&k("batch_send_deadline"), f),
        min_backoff: q.text(&k("min_backoff"), f),
        max_backoff: q.text(&k("max_backoff"), f),
        max_batch_size: None,
        max_sample_age: q.text(&k("sample_age_limit"), f),
    };
    let retry_429 = k("retry_on_http_429");
    if q.has(&retry_429) && q.bool(&retry_429, f) == Some(false) {
        f.not_imported(
            q.path.at(retry_429.as_str()),
            "outpost always retries 429 answers with backoff",
        );
    }
    q.rest(f, |_| "outpost's queue has no such setting".into());
    spec
}

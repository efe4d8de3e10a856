//! The central query API as `verify` sees it: instant queries against
//! `/api/v1/query`, which Prometheus, Thanos Query, Mimir and
//! VictoriaMetrics answer in the same JSON shape.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

/// How long one query may take before verify gives up on the API.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read: a fleet-wide `up` of ~100k targets.
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// What it takes to reach the query API: the URL, the tenant header the
/// query side reads (Thanos Query's `--query.tenant-header`, Mimir's
/// `X-Scope-OrgID`), TLS and a bearer token.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// Base URL; `/api/v1/query` is appended.
    pub url: String,
    /// When set, each tenant's agents are checked in that tenant's view.
    pub tenant_header: Option<String>,
    /// The tenant value for agents that write without a tenant header.
    pub default_tenant: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub bearer_token_file: Option<PathBuf>,
}

/// The API could not be asked, or refused the question: nothing can be
/// said about the deployment (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot read {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("query `{query}` at {url}: {reason}")]
    Http {
        query: String,
        url: String,
        reason: String,
    },
    #[error("query `{query}`: the API answered {status}: {reason}")]
    Api {
        query: String,
        status: u16,
        reason: String,
    },
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Series {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// An instant query's answer and the time it was evaluated at.
#[derive(Debug, Clone)]
pub struct Vector {
    pub eval_time_s: f64,
    pub series: Vec<Series>,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<AnswerData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct AnswerData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

pub struct QueryApi {
    agent: ureq::Agent,
    endpoint: String,
    authorization: Option<String>,
    tenant_header: Option<String>,
    default_tenant: Option<String>,
}

impl QueryApi {
    /// Reads the TLS and token files once; a missing or bad file is an error here, before any query.
    pub fn new(o: &ApiOptions) -> Result<QueryApi, QueryError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| QueryError::File {
                path: path.clone(),
                source,
            })
        };
        let mut tls = TlsConfig::builder().disable_verification(o.insecure_skip_verify);
        if let Some(ca) = &o.ca_file {
            let certs = pem_certs(ca, &read(ca)?)?;
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        match (&o.cert_file, &o.key_file) {
            (Some(cert), Some(key)) => {
                let chain = pem_certs(cert, &read(cert)?)?;
                let key_pem = read(key)?;
                let key_der = PrivateKey::from_pem(&key_pem).map_err(|e| QueryError::Pem {
                    path: key.clone(),
                    reason: e.to_string(),
                })?;
                tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key_der)));
            }
            (None, None) => {}
            (Some(path), None) | (None, Some(path)) => {
                return Err(QueryError::Pem {
                    path: path.clone(),
                    reason: "a client certificate needs both --cert-file and --key-file".into(),
                })
            }
        }
        let authorization = match &o.bearer_token_file {
            Some(path) => {
                let token = String::from_utf8_lossy(&read(path)?).trim().to_string();
                Some(format!("Bearer {token}"))
            }
            None => None,
        };
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(Some(QUERY_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(QueryApi {
            agent,
            endpoint: format!("{}/api/v1/query", o.url.trim_end_matches('/')),
            authorization,
            tenant_header: o.tenant_header.clone(),
            default_tenant: o.default_tenant.clone(),
        })
    }

    /// Whether tenants are separate views (a tenant header is configured).
    pub fn per_tenant(&self) -> bool {
        self.tenant_header.is_some()
    }

    /// Evaluates `promql` now, in the view of `tenant` (ignored without a tenant header).
    pub fn instant(&self, tenant: Option<&str>, promql: &str) -> Result<Vector, QueryError> {
        let http = |reason: String| QueryError::Http {
            query: promql.to_string(),
            url: self.endpoint.clone(),
            reason,
        };
        let mut request = self.agent.get(&self.endpoint).query("query", promql);
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        if let (Some(h), Some(t)) = (&self.tenant_header, tenant.or(self.default_tenant.as_deref())) {
            request = request.header(h.as_str(), t);
        }
        let mut response = request.call().map_err(|e| http(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| http(e.to_string()))?;
        let api = |reason: String| QueryError::Api {
            query: promql.to_string(),
            status,
            reason,
        };
        let answer: Answer = serde_json::from_str(&body).map_err(|_| {
            let excerpt: String = body.chars().take(200).collect();
            api(format!("not a query API answer: {excerpt}"))
        })?;
        if answer.status != "success" {
            return Err(api(answer.error.unwrap_or(answer.status)));
        }
        let data = answer.data.ok_or_else(|| api("no `data` in the answer".into()))?;
        if data.result_type != "vector" {
            return Err(api(format!("expected a vector, got a {}", data.result_type)));
        }
        let items: Vec<VectorItem> =
            serde_json::from_value(data.result).map_err(|e| api(format!("unexpected vector shape: {e}")))?;
        let eval_time_s = items.first().map_or_else(now_s, |i| i.value.0);
        let series = items
            .into_iter()
            .map(|i| Series {
                labels: i.metric,
                // Prometheus writes NaN and ±Inf as text; anything else unreadable is NaN.
                value: i.value.1.parse().unwrap_or(f64::NAN),
            })
            .collect();
        Ok(Vector { eval_time_s, series })
    }
}

/// Every certificate in a PEM file; at least one.
fn pem_certs(path: &Path, pem: &[u8]) -> Result<Vec<Certificate<'static>>, QueryError> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(QueryError::Pem {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        }
    }
    if certs.is_empty() {
        return Err(QueryError::Pem {
            path: path.to_path_buf(),
            reason: "holds no PEM certificate".into(),
        });
    }
    Ok(certs)
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

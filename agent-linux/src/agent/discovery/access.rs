//! Where a discovery job's API server is and how the agent shows who it is.
//!
//! In-cluster (a plan without `api_server`, the usual case): the address is
//! `KUBERNETES_SERVICE_HOST`:`KUBERNETES_SERVICE_PORT` over HTTPS, verified
//! against the service account's `ca.crt`, and every request carries the
//! service account's `token`, re-read when the file changes (projected
//! tokens rotate). The directory of both files is
//! `/var/run/secrets/kubernetes.io/serviceaccount` unless
//! `--kube.service-account-dir` says otherwise. A plan's `api_server` names
//! the URL, token file and TLS settings instead. The token is never logged.

use std::path::Path;
use std::sync::Arc;

use outpost_core::plan::{self, Plan};
use rustls::ClientConfig;

use crate::agent::endpoint::{tls_config, Endpoint};
use crate::agent::secrets::Authorization;
use crate::cli::RunArgs;
use crate::net::client_config;

/// Everything a watch connection of one job needs to reach its API server.
pub(in crate::agent) struct ApiAccess {
    pub endpoint: Endpoint,
    /// For logs: the URL, or where in-cluster access got it.
    pub url: String,
    pub tls: Option<Arc<ClientConfig>>,
    pub server_name: String,
    pub auth: Option<Authorization>,
}

impl ApiAccess {
    pub(in crate::agent) fn build(
        plan: &Plan,
        d: &plan::Discovery,
        args: &RunArgs,
    ) -> Result<ApiAccess, String> {
        match &d.api_server {
            Some(api) => Self::named(plan, api),
            None => Self::in_cluster(args),
        }
    }

    fn named(plan: &Plan, api: &plan::ApiServer) -> Result<ApiAccess, String> {
        let url = plan.str(api.url).to_string();
        let endpoint = Endpoint::parse(&url).map_err(|e| format!("api_server.{e}"))?;
        let tls = if endpoint.https {
            tls_config(plan, &api.tls).map_err(|e| format!("api_server.tls: {e}"))?
        } else {
            None
        };
        let server_name = api
            .tls
            .as_ref()
            .and_then(|t| t.server_name)
            .map(|s| plan.str(s).to_string())
            .unwrap_or_else(|| endpoint.host.clone());
        Ok(ApiAccess {
            url,
            tls,
            server_name,
            auth: api.bearer_token_file.map(|f| Authorization::bearer(plan.str(f))),
            endpoint,
        })
    }

    fn in_cluster(args: &RunArgs) -> Result<ApiAccess, String> {
        let Some(service) = &args.kube_service else {
            return Err(
                "in-cluster discovery needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (set by Kubernetes in every pod), or api_server in the spec"
                    .into(),
            );
        };
        let url = format!("https://{service}");
        let endpoint =
            Endpoint::parse(&url).map_err(|e| format!("KUBERNETES_SERVICE_HOST/_PORT {service}: {e}"))?;
        let dir: &Path = &args.service_account_dir;
        let ca = dir.join("ca.crt");
        let tls = client_config(Some(&ca), None, None, false)
            .map_err(|e| format!("in-cluster discovery: service-account CA: {e}"))?;
        let token = dir.join("token");
        if !token.exists() {
            return Err(format!(
                "in-cluster discovery: no service-account token at {} (is automountServiceAccountToken off?)",
                token.display()
            ));
        }
        Ok(ApiAccess {
            url,
            tls: Some(tls),
            server_name: endpoint.host.clone(),
            auth: Some(Authorization::bearer(&token.to_string_lossy())),
            endpoint,
        })
    }
}

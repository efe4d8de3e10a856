//! Where and how batches are sent: everything a plan's `receiver` section
//! decides, checked and built before it is used.

use std::sync::Arc;

use outpost_core::plan::{Auth, Plan};
use rustls::ClientConfig;

use crate::agent::endpoint::{tls_config, Endpoint};
use crate::agent::secrets::Authorization;

/// Built whole before it replaces the running one, so a reload with a bad
/// receiver (unreadable CA, bad URL) changes nothing.
pub(in crate::agent) struct ReceiverSide {
    pub endpoint: Endpoint,
    /// The URL as the plan has it, for logs and metric labels.
    pub url: String,
    pub tls: Option<Arc<ClientConfig>>,
    pub server_name: String,
    pub tenant_header: Option<(String, Vec<u8>)>,
    pub auth: Option<Authorization>,
    pub remote_timeout_ms: u64,
}

impl ReceiverSide {
    pub(in crate::agent) fn build(plan: &Plan) -> Result<ReceiverSide, String> {
        let url = plan.str(plan.receiver.url).to_string();
        let endpoint = Endpoint::parse(&url).map_err(|e| format!("receiver.{e}"))?;
        let tls = if endpoint.https {
            tls_config(plan, &plan.receiver.tls).map_err(|e| format!("receiver.tls: {e}"))?
        } else {
            None
        };
        let server_name = plan
            .receiver
            .tls
            .as_ref()
            .and_then(|t| t.server_name)
            .map(|s| plan.str(s).to_string())
            .unwrap_or_else(|| endpoint.host.clone());
        let auth = match &plan.receiver.auth {
            Auth::None => None,
            Auth::BearerTokenFile(f) => Some(Authorization::bearer(plan.str(*f))),
            Auth::Basic {
                username,
                password_file,
            } => Some(Authorization::basic(
                plan.str(*username),
                plan.str(*password_file),
            )),
        };
        Ok(ReceiverSide {
            url,
            endpoint,
            tls,
            server_name,
            tenant_header: plan.receiver.tenant_header.map(|h| {
                (
                    plan.str(h.name).to_string(),
                    plan.str(h.value).as_bytes().to_vec(),
                )
            }),
            auth,
            remote_timeout_ms: u64::from(plan.receiver.remote_timeout_ms),
        })
    }
}

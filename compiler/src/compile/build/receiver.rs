//! The plan's receiver: URL, tenant header, TLS, auth files, timeout and the
//! write relabel rules.

use super::{clamp_u32, tls_plan};
use crate::compile::context::Cx;
use crate::compile::defaults::{default_ms, DEFAULT_REMOTE_TIMEOUT, DEFAULT_TENANT_HEADER};
use crate::compile::intern::Interner;
use crate::compile::layers::Unit;
use crate::compile::relabel::relabel_rules;
use crate::diag::Diagnostic;
use crate::spec::{AuthSpec, BasicAuthSpec};
use crate::tree::DocPath;
use crate::units::parse_duration;
use outpost_core::plan;

impl Unit<'_> {
    pub(super) fn receiver(&self, cx: &mut Cx, s: &mut Interner) -> plan::Receiver {
        let r = &self.fleet.receiver;
        let url = s.id(&r.url);
        let header = match &r.tenant_header {
            None => Some(DEFAULT_TENANT_HEADER),
            Some(h) if h.is_empty() => None,
            Some(h) => Some(h.as_str()),
        };
        let tenant_header = match (self.tenant, header) {
            (Some(t), Some(h)) => Some(plan::LabelPair {
                name: s.id(h),
                value: s.id(&t.name),
            }),
            (Some(_), None) => {
                cx.push(
                    Diagnostic::error(
                        "no-tenant-header",
                        DocPath::root().at("receiver").at("tenant_header"),
                        format!("cluster `{}` has tenants but the receiver has no tenant header", self.cluster.name),
                    )
                    .label("empty tenant header")
                    .help("Thanos Receive reads `THANOS-TENANT` (its --receive.tenant-header); Mimir/Cortex read `X-Scope-OrgID`"),
                );
                None
            }
            _ => None,
        };
        let tls = r.tls.as_ref().map(|t| tls_plan(s, t));
        let auth = match &r.auth {
            Some(AuthSpec {
                bearer_token_file: Some(f),
                ..
            }) => plan::Auth::BearerTokenFile(s.id(f)),
            Some(AuthSpec {
                basic:
                    Some(BasicAuthSpec {
                        username,
                        password_file: Some(p),
                        ..
                    }),
                ..
            }) => plan::Auth::Basic {
                username: s.id(username),
                password_file: s.id(p),
            },
            _ => plan::Auth::None,
        };
        // A bad timeout was reported by the receiver's checks; the default stands in.
        let timeout = r
            .remote_timeout
            .as_deref()
            .and_then(|t| parse_duration(t).ok())
            .unwrap_or_else(|| default_ms(DEFAULT_REMOTE_TIMEOUT));
        let write_relabel = match self.pick(|x| x.write_relabel.as_ref(), &["write_relabel"]) {
            Some((list, p)) => relabel_rules(cx, s, list, &p),
            None => Vec::new(),
        };
        plan::Receiver {
            url,
            tenant_header,
            tls,
            auth,
            remote_timeout_ms: clamp_u32(timeout),
            write_relabel,
        }
    }
}

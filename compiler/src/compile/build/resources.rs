//! The plan's budget: CPU and memory requests and limits of the agent's
//! pod, from `resources` (cluster role) or `node_resources` (node role).

use crate::compile::context::Cx;
use crate::compile::defaults::{DEFAULT_CPU, DEFAULT_MEMORY};
use crate::compile::layers::Unit;
use crate::diag::Diagnostic;
use crate::spec::{ResourcesSpec, Settings};
use crate::units::format_size;
use outpost_core::plan::{self, Role};

const REQUEST_OVER_LIMIT_HELP: &str =
    "Kubernetes refuses a pod whose request exceeds its limit; raise the limit or lower the request";

impl<'a> Unit<'a> {
    pub(super) fn budget(&self, cx: &mut Cx, role: Role) -> plan::Budget {
        let key = match role {
            Role::Node => "node_resources",
            Role::Cluster => "resources",
        };
        let get = move |x: &'a Settings| -> Option<&'a ResourcesSpec> {
            match role {
                Role::Node => x.node_resources.as_ref(),
                Role::Cluster => x.resources.as_ref(),
            }
        };
        let quantity = |which: &str, what: &str, pick: fn(&ResourcesSpec) -> Option<&String>| {
            self.pick(|x| get(x).and_then(pick), &[key, which, what])
        };
        let (cpu_req, _) = cx.cpu_or(
            quantity("requests", "cpu", |r| r.requests.as_ref()?.cpu.as_ref()),
            DEFAULT_CPU,
        );
        let (cpu_lim, cpu_lim_path) = cx.cpu_or(
            quantity("limits", "cpu", |r| r.limits.as_ref()?.cpu.as_ref()),
            DEFAULT_CPU,
        );
        let (mem_req, _) = cx.size_or(
            quantity("requests", "memory", |r| r.requests.as_ref()?.memory.as_ref()),
            DEFAULT_MEMORY,
        );
        let (mem_lim, mem_lim_path) = cx.size_or(
            quantity("limits", "memory", |r| r.limits.as_ref()?.memory.as_ref()),
            DEFAULT_MEMORY,
        );
        if cpu_req > cpu_lim {
            cx.push(
                Diagnostic::error(
                    "request-over-limit",
                    cpu_lim_path.unwrap_or_else(|| self.unit_path.clone()),
                    format!("CPU limit {cpu_lim}m is below the request {cpu_req}m"),
                )
                .label("limit < request")
                .help(REQUEST_OVER_LIMIT_HELP),
            );
        }
        if mem_req > mem_lim {
            cx.push(
                Diagnostic::error(
                    "request-over-limit",
                    mem_lim_path.unwrap_or_else(|| self.unit_path.clone()),
                    format!(
                        "memory limit {} is below the request {}",
                        format_size(mem_lim),
                        format_size(mem_req)
                    ),
                )
                .label("limit < request")
                .help(REQUEST_OVER_LIMIT_HELP),
            );
        }
        plan::Budget {
            cpu_request_millis: cpu_req,
            cpu_limit_millis: cpu_lim,
            memory_request_bytes: mem_req,
            memory_limit_bytes: mem_lim,
        }
    }
}

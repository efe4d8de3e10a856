//! `outpostc verify`: asks the central query API whether every agent the
//! spec implies is up, delivering, not failing or dropping, labelled
//! exactly as the spec says and on time.
//!
//! - `expect`: what the plans say the receiver should hold;
//! - `query`: the Prometheus-compatible `/api/v1/query` client;
//! - `checks`: the queries and their judgement, per tenant view;
//! - `report`: the rows, as a table or JSON.
//!
//! With a query-side tenant header, each tenant is checked in its own view
//! (Thanos Query with `--query.tenant-header`, Mimir), so series that land
//! in the wrong tenant show up. Without it, one view holds every tenant
//! (Prometheus, Thanos Query without tenancy) and the `tenant` label tells
//! them apart.

mod checks;
mod expect;
mod query;
mod report;

pub use checks::{
    CLOCK_OFFSET_METRIC, DROPPED_METRIC, FAILED_METRIC, SUCCEEDED_METRIC, TARGET_SCRAPES_METRIC,
};
pub use expect::{expected_units, UnitExpect};
pub use query::{ApiOptions, QueryApi, QueryError};
pub use report::{Report, Row};

use crate::compile::AgentPlan;

/// The seed's own window for its rate queries.
pub const DEFAULT_WINDOW: &str = "5m";
/// Clock offset an agent may have against the receiver: beyond it, samples
/// risk the receiver's out-of-bounds and too-far-in-future checks.
pub const DEFAULT_MAX_CLOCK_OFFSET_S: f64 = 2.0;

/// How strict verify is.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// PromQL range for the rate queries, e.g. `5m`.
    pub window: String,
    /// Newest sample age beyond which a target counts as stale; `None`:
    /// per job from its plan (two intervals, a batch deadline and a send).
    pub max_age_s: Option<f64>,
    pub max_clock_offset_s: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            window: DEFAULT_WINDOW.to_string(),
            max_age_s: None,
            max_clock_offset_s: DEFAULT_MAX_CLOCK_OFFSET_S,
        }
    }
}

/// Checks the deployment of `plans` against what `api` holds. Fails only
/// when the API cannot be asked; what is wrong with the deployment is in
/// the report's rows.
pub fn verify(plans: &[AgentPlan], api: &QueryApi, t: &Thresholds) -> Result<Report, QueryError> {
    let units = expected_units(plans);
    let names = expect::label_names(&units);
    let mut rows = Vec::new();
    if api.per_tenant() {
        let mut views: Vec<Option<&str>> = units.iter().map(|u| u.writes_as.as_deref()).collect();
        views.sort();
        views.dedup();
        for view in views {
            let members: Vec<&UnitExpect> = units.iter().filter(|u| u.writes_as.as_deref() == view).collect();
            checks::check_view(api, view, &members, &units, &names, t, &mut rows)?;
        }
    } else {
        let all: Vec<&UnitExpect> = units.iter().collect();
        checks::check_view(api, None, &all, &units, &names, t, &mut rows)?;
    }
    Ok(Report {
        rows,
        window: t.window.clone(),
    })
}

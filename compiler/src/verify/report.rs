//! verify's answer: one row per expected agent or job (and one per set of
//! series the spec does not explain), as a table or as JSON.

use outpost_core::plan::Role;
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cluster: String,
    pub tenant: Option<String>,
    /// `None` for series no agent of the spec explains.
    pub role: Option<Role>,
    /// `None` for the agent's own row.
    pub job: Option<String>,
    /// Agents (agent rows) or targets (job rows) seen.
    pub seen: usize,
    /// Why the row fails; empty when it passes.
    pub problems: Vec<String>,
    /// What was seen, and checks that could not run (e.g. a gauge not exported).
    pub notes: Vec<String>,
}

impl Row {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<Row>,
    /// The rate window used, e.g. `5m`.
    pub window: String,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| !r.ok()).count()
    }

    /// The rows that fail, for tests and summaries.
    pub fn failing(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| !r.ok()).collect()
    }

    pub fn render_text(&self) -> String {
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.cluster.clone(),
                    r.tenant.clone().unwrap_or_else(|| "-".into()),
                    r.role.map_or("-", Role::as_str).to_string(),
                    r.job.clone().unwrap_or_else(|| "-".into()),
                    if r.ok() { "ok" } else { "FAIL" }.to_string(),
                    if r.ok() {
                        r.notes.join("; ")
                    } else {
                        r.problems
                            .iter()
                            .chain(&r.notes)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("; ")
                    },
                ]
            })
            .collect();
        let header = ["CLUSTER", "TENANT", "AGENT", "JOB", "STATUS", "DETAIL"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&cells) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&format!(
            "{} rows: {} ok, {} failed (rates over {})\n",
            self.rows.len(),
            self.rows.len() - self.failed(),
            self.failed(),
            self.window
        ));
        out
    }

    pub fn render_json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "cluster": r.cluster,
                    "tenant": r.tenant,
                    "role": r.role.map(Role::as_str),
                    "job": r.job,
                    "status": if r.ok() { "ok" } else { "fail" },
                    "seen": r.seen,
                    "problems": r.problems,
                    "notes": r.notes,
                })
            })
            .collect();
        json!({
            "rows": rows,
            "ok": self.rows.len() - self.failed(),
            "failed": self.failed(),
            "window": self.window,
        })
    }
}

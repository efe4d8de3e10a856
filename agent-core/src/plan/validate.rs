//! What [`super::decode`] checks after the payload decodes: every string reference points into
//! the table and every value is in the range the agent relies on.

use super::*;

impl Plan {
    /// Checks every cross-reference and range the agent relies on.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.sharing.is_some_and(|s| s.scrape_concurrency == 0) {
            return Err(PlanError::Invalid {
                field: "sharing.scrape_concurrency",
                reason: "must be at least 1",
            });
        }
        let n = self.strings.len();
        let s = |field: &'static str, id: StrId| -> Result<(), PlanError> {
            if (id.0 as usize) < n {
                Ok(())
            } else {
                Err(PlanError::BadString {
                    field,
                    id: id.0,
                    strings: n,
                })
            }
        };
        let pairs = |field: &'static str, pairs: &[LabelPair]| -> Result<(), PlanError> {
            pairs
                .iter()
                .try_for_each(|p| s(field, p.name).and_then(|_| s(field, p.value)))
        };
        let tls = |field: &'static str, tls: &Option<Tls>| -> Result<(), PlanError> {
            if let Some(t) = tls {
                for id in [t.ca_file, t.cert_file, t.key_file, t.server_name]
                    .into_iter()
                    .flatten()
                {
                    s(field, id)?;
                }
            }
            Ok(())
        };
        let rules = |field: &'static str, rules: &[RelabelRule]| -> Result<(), PlanError> {
            for r in rules {
                for id in &r.source_labels {
                    s(field, *id)?;
                }
                for id in [r.separator, r.regex, r.target_label, r.replacement] {
                    s(field, id)?;
                }
                if r.action == RelabelAction::HashMod && r.modulus == 0 {
                    return Err(PlanError::Invalid {
                        field,
                        reason: "hashmod with modulus 0",
                    });
                }
            }
            Ok(())
        };
        let limits = |field: &'static str, l: &Limits| -> Result<(), PlanError> {
            if l.body_bytes == 0 || l.samples == 0 || l.label_count == 0 {
                return Err(PlanError::Invalid {
                    field,
                    reason: "a limit is zero",
                });
            }
            Ok(())
        };

        s("agent.cluster", self.agent.cluster)?;
        if let Some(t) = self.agent.tenant {
            s("agent.tenant", t)?;
        }
        pairs("external_labels", &self.external_labels)?;
        if !self
            .external_labels
            .windows(2)
            .all(|w| self.str(w[0].name) < self.str(w[1].name))
        {
            return Err(PlanError::Invalid {
                field: "external_labels",
                reason: "names must be sorted and unique",
            });
        }

        let r = &self.receiver;
        s("receiver.url", r.url)?;
        if let Some(h) = &r.tenant_header {
            pairs("receiver.tenant_header", core::slice::from_ref(h))?;
        }
        tls("receiver.tls", &r.tls)?;
        match r.auth {
            Auth::None => {}
            Auth::BearerTokenFile(f) => s("receiver.auth", f)?,
            Auth::Basic {
                username,
                password_file,
            } => {
                s("receiver.auth", username)?;
                s("receiver.auth", password_file)?;
            }
        }
        rules("receiver.write_relabel", &r.write_relabel)?;
        if r.remote_timeout_ms == 0 {
            return Err(PlanError::Invalid {
                field: "receiver.remote_timeout_ms",
                reason: "must be > 0",
            });
        }

        let q = &self.queue;
        if q.min_shards == 0 || q.min_shards > q.max_shards {
            return Err(PlanError::Invalid {
                field: "queue.min_shards",
                reason: "must be between 1 and max_shards",
            });
        }
        if q.max_samples_per_send == 0 || q.max_batch_bytes < 1024 {
            return Err(PlanError::Invalid {
                field: "queue.max_batch_bytes",
                reason: "batches must hold at least one sample and 1 KiB",
            });
        }
        if q.min_backoff_ms > q.max_backoff_ms {
            return Err(PlanError::Invalid {
                field: "queue.min_backoff_ms",
                reason: "exceeds max_backoff_ms",
            });
        }

        s("wal.dir", self.wal.dir)?;
        if self.wal.segment_bytes < q.max_batch_bytes
            || u64::from(self.wal.segment_bytes) > self.wal.max_bytes
        {
            return Err(PlanError::Invalid {
                field: "wal.segment_bytes",
                reason: "must hold one batch and fit within wal.max_bytes",
            });
        }
        if let WalMode::Spill(spill) = self.wal.mode {
            if spill.after_ms == 0 {
                return Err(PlanError::Invalid {
                    field: "wal.mode.spill.after_ms",
                    reason: "must be > 0",
                });
            }
            if u64::from(spill.max_held_bytes) < snappy::max_compressed_len(u64::from(q.max_batch_bytes)) {
                return Err(PlanError::Invalid {
                    field: "wal.mode.spill.max_held_bytes",
                    reason: "must hold one compressed batch of queue.max_batch_bytes",
                });
            }
        }

        if let Some(node) = &self.node {
            s("node.job", node.job)?;
            limits("node.limits", &node.limits)?;
            rules("node.metric_relabel", &node.metric_relabel)?;
            for (field, id) in node.options.patterns() {
                if let Some(id) = id {
                    s(field, id)?;
                }
            }
            if let Some(t) = &node.options.textfile {
                s("node.options.textfile.directory", t.directory)?;
                if t.max_files == 0 || t.max_file_bytes == 0 {
                    return Err(PlanError::Invalid {
                        field: "node.options.textfile",
                        reason: "a limit is zero",
                    });
                }
            }
            if node.interval_ms == 0 {
                return Err(PlanError::Invalid {
                    field: "node.interval_ms",
                    reason: "must be > 0",
                });
            }
        }
        for job in &self.scrape_jobs {
            s("scrape_jobs.name", job.name)?;
            s("scrape_jobs.path", job.path)?;
            for t in &job.targets {
                s("scrape_jobs.targets", *t)?;
            }
            pairs("scrape_jobs.labels", &job.labels)?;
            if let Some(f) = job.bearer_token_file {
                s("scrape_jobs.bearer_token_file", f)?;
            }
            tls("scrape_jobs.tls", &job.tls)?;
            limits("scrape_jobs.limits", &job.limits)?;
            rules("scrape_jobs.metric_relabel", &job.metric_relabel)?;
            rules("scrape_jobs.targeting.relabel", &job.targeting.relabel)?;
            if let Some(d) = &job.targeting.discovery {
                for ns in &d.namespaces {
                    s("scrape_jobs.targeting.discovery.namespaces", *ns)?;
                }
                if d.max_targets == 0 || d.max_object_bytes == 0 || d.max_store_bytes == 0 {
                    return Err(PlanError::Invalid {
                        field: "scrape_jobs.targeting.discovery",
                        reason: "a limit is zero",
                    });
                }
                if d.own_node && d.role != KubeRole::Pod {
                    return Err(PlanError::Invalid {
                        field: "scrape_jobs.targeting.discovery.own_node",
                        reason: "only the pod role can watch its own node's objects",
                    });
                }
                if let Some(api) = &d.api_server {
                    s("scrape_jobs.targeting.discovery.api_server", api.url)?;
                    if let Some(f) = api.bearer_token_file {
                        s("scrape_jobs.targeting.discovery.api_server", f)?;
                    }
                    tls("scrape_jobs.targeting.discovery.api_server.tls", &api.tls)?;
                }
            }
            if job.interval_ms == 0 || job.timeout_ms == 0 || job.timeout_ms > job.interval_ms {
                return Err(PlanError::Invalid {
                    field: "scrape_jobs.timeout_ms",
                    reason: "interval and timeout must be > 0 and timeout <= interval",
                });
            }
        }
        s("self_scrape.job", self.self_scrape.job)?;
        if self.self_scrape.interval_ms == 0 {
            return Err(PlanError::Invalid {
                field: "self_scrape.interval_ms",
                reason: "must be > 0",
            });
        }
        Ok(())
    }
}

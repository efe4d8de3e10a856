//! SIGHUP: a new plan replaces the scrape side, once no scrape is in flight
//! (the loop starts none while a reload waits). A changed receiver or
//! queue rebuilds the sending side over the same WAL (see
//! [`Shipping::request_rebuild`](super::shipping::Shipping)); WAL settings
//! wait for a restart. A bad plan keeps the old one whole. Sections are
//! compared by what they say ([`SameMeaning`]), not by their string ids.

use outpost_core::plan::{Plan, StrId, Wal};

use super::discovery::Discovering;
use super::plan_compare::SameMeaning;
use super::scraping::Scraping;
use super::shipping::ReceiverSide;
use super::{load_plan, Agent};
use crate::log;

impl Agent {
    pub(super) fn reload(&mut self, now: u64) {
        let wall = self.clock.wall_ms();
        let plan = match load_plan(&self.args.plan) {
            Ok(p) => self.keep_what_needs_a_restart(p),
            Err(e) => return self.reload_failed(&e),
        };
        // The queue holds no string ids: `==` compares what it says.
        let shipping_changed = !plan.receiver.same_meaning(&plan, &self.plan.receiver, &self.plan)
            || plan.queue != self.plan.queue;
        let side = if shipping_changed {
            match ReceiverSide::build(&plan) {
                Ok(side) => Some(side),
                Err(e) => return self.reload_failed(&e),
            }
        } else {
            None
        };
        let shards = if shipping_changed {
            plan.queue.min_shards.max(1)
        } else {
            self.ship.sender.shards()
        };
        let mut new = match Scraping::build(&plan, &self.args, shards, now) {
            Ok(new) => new,
            Err(e) => return self.reload_failed(&e),
        };
        // Discovery lists afresh under the new plan; what it had found is
        // scraped on meanwhile.
        let mut discovering = match Discovering::build(&plan, &self.args) {
            Ok(d) => d,
            Err(e) => return self.reload_failed(&e),
        };
        discovering.carry_over(&self.discovering, &plan, &mut new, now);
        let mut old_discovering = std::mem::replace(&mut self.discovering, discovering);
        old_discovering.close(self.poll.registry());
        // Same target in both plans: keep its staleness memory and
        // counters. Gone from the new plan: its series go stale.
        let mut old = std::mem::replace(&mut self.scraping, new);
        for t in &mut old.targets {
            let kept = self
                .scraping
                .targets
                .iter_mut()
                .find(|n| n.stats.job == t.stats.job && n.stats.instance == t.stats.instance);
            match kept {
                Some(n) => {
                    // A target whose series change (its labels, relabeling,
                    // external labels) starts afresh; its old series go stale.
                    if !n
                        .pipeline
                        .adopt_series(&mut t.pipeline, &old.batcher, &mut self.scraping.batcher)
                    {
                        t.retire(wall, &mut old.batcher, &mut self.ship);
                    }
                    std::mem::swap(&mut n.stats, &mut t.stats);
                    n.too_old_logged_ms = t.too_old_logged_ms;
                    n.too_old_unlogged = t.too_old_unlogged;
                }
                None => t.retire(wall, &mut old.batcher, &mut self.ship),
            }
        }
        old.batcher.close_all(&mut self.ship);
        old.close(self.poll.registry());
        if let Some(side) = side {
            self.ship.request_rebuild(side, plan.queue.clone(), now);
        }
        self.plan = plan;
        self.info.reload_config_success = true;
        self.info.last_config_time_ms = wall.max(0) as u64;
        log::info(
            "plan reloaded",
            &[
                ("plan", &self.args.plan.display()),
                ("targets", &self.scraping.targets.len()),
            ],
        );
    }

    /// The running plan's values for what a reload cannot change, logged.
    fn keep_what_needs_a_restart(&self, mut plan: Plan) -> Plan {
        if !plan.wal.same_meaning(&plan, &self.plan.wal, &self.plan) {
            // The WAL's directory, bound and segment size shape the open
            // segments; moving them under a running sender is not supported.
            log::warn(
                "reload: wal settings (dir, max_bytes, segment_bytes, fsync, mode) are NOT applied; restart required",
                &[("plan", &self.args.plan.display())],
            );
            // The running settings, with the directory's id in the new table.
            let dir = self.plan.str(self.plan.wal.dir);
            plan.wal = Wal {
                dir: id_in(&mut plan, dir),
                ..self.plan.wal.clone()
            };
        }
        if plan.queue.max_batch_bytes > self.plan.queue.max_batch_bytes {
            // WAL records were sized for the old bound at open.
            log::warn(
                "reload: a larger queue.max_batch_bytes is NOT applied; restart required",
                &[
                    ("running", &self.plan.queue.max_batch_bytes),
                    ("new", &plan.queue.max_batch_bytes),
                ],
            );
            plan.queue.max_batch_bytes = self.plan.queue.max_batch_bytes;
        }
        plan
    }

    fn reload_failed(&mut self, err: &str) {
        self.info.reload_config_success = false;
        log::error("reload failed, keeping the running plan", &[("err", &err)]);
    }
}

/// The id of `s` in `plan`'s string table, added at its end if missing.
fn id_in(plan: &mut Plan, s: &str) -> StrId {
    let i = match plan.strings.iter().position(|x| x == s) {
        Some(i) => i,
        None => {
            plan.strings.push(s.to_string());
            plan.strings.len() - 1
        }
    };
    StrId(i as u32)
}

//! A reload that changes the receiver or the queue: the sending side is
//! rebuilt over the same WAL and sender once the sends in flight are
//! answered (or their time is up).

use mio::Registry;
use outpost_core::plan;

use super::receiver::ReceiverSide;
use super::{Shipping, IN_FLIGHT_GRACE_MS};
use crate::log;

pub(super) struct PendingRebuild {
    side: ReceiverSide,
    queue: plan::Queue,
    /// Answers to sends in flight count until then.
    pub until_ms: u64,
    /// The first seq built under the new shard layout.
    pub layout_barrier: u64,
}

impl Shipping {
    /// Asks for the receiver and queue settings to be replaced over the same
    /// WAL and sender. No new send starts from now on; sends in flight get
    /// until their timeout (at most [`IN_FLIGHT_GRACE_MS`]) to be answered,
    /// and their answers count. Then [`Shipping::rebuild_when_drained`]
    /// switches.
    pub(in crate::agent) fn request_rebuild(&mut self, side: ReceiverSide, queue: plan::Queue, now: u64) {
        self.pending_rebuild = Some(Box::new(PendingRebuild {
            side,
            queue,
            until_ms: now + self.side.remote_timeout_ms.min(IN_FLIGHT_GRACE_MS),
            layout_barrier: self.wal.next_seq(),
        }));
    }

    /// Whether a rebuild waits: nothing new is sent meanwhile.
    pub(in crate::agent) fn rebuild_pending(&self) -> bool {
        self.pending_rebuild.is_some()
    }

    /// Switches once nothing is in flight or the drain time is up. What is
    /// still unanswered then goes back to the sender's pending records and
    /// is sent again to the new receiver.
    pub(in crate::agent) fn rebuild_when_drained(&mut self, registry: &Registry, now: u64) {
        let due = self
            .pending_rebuild
            .as_ref()
            .is_some_and(|p| self.in_flight() == 0 || now >= p.until_ms);
        if !due {
            return;
        }
        let Some(pending) = self.pending_rebuild.take() else {
            return;
        };
        let PendingRebuild {
            side,
            queue,
            layout_barrier,
            ..
        } = *pending;
        let abandoned = self.in_flight();
        for mut sc in self.shards.iter_mut().filter_map(Option::take) {
            sc.conn.close(registry);
        }
        self.sender.reconfigure(&queue, layout_barrier);
        self.shards = (0..queue.max_shards.max(1)).map(|_| None).collect();
        self.side = side;
        self.consecutive_failures = 0;
        log::info(
            "reload: remote write rebuilt",
            &[
                ("url", &self.side.url),
                ("min_shards", &queue.min_shards),
                ("max_shards", &queue.max_shards),
                ("abandoned_in_flight", &abandoned),
            ],
        );
    }
}

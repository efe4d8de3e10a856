//! The ack floor: every sequence number below it is acknowledged or
//! dropped. Records below it leave the window, segments wholly below it are
//! deleted, and `DIR/ack_floor` remembers it across restarts.

use std::fs;
use std::io::Write as _;

use outpost_core::plan::WalMode;

use super::window::Place;
use super::DiskWal;
use crate::log;

impl DiskWal {
    /// Every sequence number below `floor` is acknowledged or dropped:
    /// forget those records and delete segments that hold nothing else.
    pub fn ack(&mut self, floor: u64) {
        self.ack_floor = self.ack_floor.max(floor);
        while let Some(r) = self
            .window
            .front()
            .filter(|r| r.meta.seq < self.ack_floor)
            .copied()
        {
            if let Place::Held { start } = r.place {
                self.held.free(start);
            }
            self.window.pop_front();
        }
        // Never the segment being appended to: it is still growing.
        while self.segments.len() > 1 {
            let first = self.segments[0];
            let done = first.last_seq.is_none_or(|last| last < self.ack_floor);
            if !done {
                break;
            }
            self.segments.pop_front();
            self.remove_segment_file(first.index);
            if self.cursor.is_some_and(|(i, _)| i == first.index) {
                self.cursor = self.segments.front().map(|s| (s.index, 0));
            }
        }
        let all_done =
            self.segments.len() == 1 && self.segments[0].last_seq.is_none_or(|last| last < self.ack_floor);
        if all_done && matches!(self.cfg.mode, WalMode::Spill(_)) {
            // Spill mode writes only now and then: a segment whose records
            // are all acknowledged goes at once, and the next write starts
            // a new one. An idle spill-mode WAL is an empty directory.
            let index = self.segments[0].index;
            self.segments.clear();
            self.current = None;
            self.cursor = None;
            self.unsynced = false;
            self.remove_segment_file(index);
            return;
        }
        // A healthy WAL should not hold a whole segment of acknowledged
        // data: once the segment being appended to is all acknowledged and
        // an eighth full, start the next one so this one can go. On a disk
        // smaller than a segment this is what keeps appends from filling it.
        let current_done = self.segments.back().is_some_and(|s| {
            s.bytes >= (self.cfg.segment_bytes / 8).max(1)
                && s.last_seq.is_some_and(|last| last < self.ack_floor)
        });
        if current_done && self.current.is_some() && self.segments.len() == 1 {
            match self.roll() {
                Ok(()) => self.ack(self.ack_floor),
                Err(e) => log::warn("wal: cannot start a new segment", &[("err", &e)]),
            }
        }
    }

    /// Writes the ack floor to `DIR/ack_floor` if it moved and a record on
    /// disk needs it: one at or above the floor last written, which a
    /// restart would otherwise send again. So nothing is written while
    /// nothing is on disk (spill mode with a healthy receiver).
    pub fn persist_ack_floor(&mut self) {
        let needed = self
            .segments
            .iter()
            .any(|s| s.last_seq.is_some_and(|last| last >= self.persisted_floor));
        if self.ack_floor == self.persisted_floor || !needed {
            return;
        }
        let mut digits = [0u8; 21];
        let text = decimal_line(self.ack_floor, &mut digits);
        let done = fs::write(&self.ack_floor_tmp_path, text)
            .and_then(|_| fs::rename(&self.ack_floor_tmp_path, &self.ack_floor_path));
        match done {
            Ok(()) => self.persisted_floor = self.ack_floor,
            Err(e) => log::warn(
                "wal: cannot write ack_floor",
                &[("dir", &self.cfg.dir.display()), ("err", &e)],
            ),
        }
    }

    pub fn ack_floor(&self) -> u64 {
        self.ack_floor
    }
}

/// `value` in decimal with a newline, in `buf`: the ack floor is written
/// about once a second, and formatting into a slice allocates nothing.
fn decimal_line(value: u64, buf: &mut [u8; 21]) -> &[u8] {
    let mut rest = &mut buf[..];
    writeln!(rest, "{value}").expect("21 bytes hold a u64 and a newline");
    let len = 21 - rest.len();
    &buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_written_as_a_decimal_line_built_on_the_stack() {
        let mut buf = [0u8; 21];
        for value in [0, 7, 10, 1_234_567, u64::MAX] {
            assert_eq!(decimal_line(value, &mut buf), format!("{value}\n").as_bytes());
        }
    }
}

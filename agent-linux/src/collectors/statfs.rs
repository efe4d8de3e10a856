//! Filesystem stats off the event loop.
//!
//! statvfs on a network mount whose server is gone blocks in the kernel, for minutes or for
//! good. node_exporter runs each call in a goroutine with a timeout and skips a mount that did
//! not answer until its call returns. Here the calls run on worker threads, each with one
//! request slot made when the worker starts:
//!
//! - the scrape hands an idle worker the path and waits for the answer at most `timeout`;
//! - a worker whose call did not return in time stays with its mount, and that mount is
//!   reported as failed, without waiting, until the call returns;
//! - the other mounts go to the other workers; a worker is started when none is idle, up to
//!   [`MAX_WORKERS`]. So a scrape waits at most `timeout` for each mount that newly hangs, and
//!   once [`MAX_WORKERS`] calls hang at once, the mounts left are reported as failed at once.
//!
//! Cost: one thread once filesystem stats are first read (64 KiB of stack reserved, a few KiB
//! resident), one more per mount hanging at the same time. A warm scrape locks each worker's
//! mutex and copies the path into the slot's buffer: no allocation.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Workers at most: at most this many hanging calls are waited for (once each) at the same time.
pub const MAX_WORKERS: usize = 4;

/// What the filesystem collector reports of one mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStats {
    pub size: u64,
    pub free: u64,
    pub avail: u64,
    pub files: u64,
    pub files_free: u64,
}

/// Where filesystem stats come from: statvfs(3) on a real host, something else in tests.
/// A call may block for as long as it likes; it runs on a worker thread.
pub trait FsStatsSource: Send + Sync + 'static {
    fn stats(&self, path: &Path) -> io::Result<FsStats>;
}

/// statvfs(3) through rustix: the path is passed on the stack when shorter than 256 bytes.
pub struct Statvfs;

impl FsStatsSource for Statvfs {
    fn stats(&self, path: &Path) -> io::Result<FsStats> {
        let st = rustix::fs::statvfs(path)?;
        let fragment = st.f_frsize;
        Ok(FsStats {
            size: st.f_blocks.saturating_mul(fragment),
            free: st.f_bfree.saturating_mul(fragment),
            avail: st.f_bavail.saturating_mul(fragment),
            files: st.f_files,
            files_free: st.f_ffree,
        })
    }
}

/// The workers and their slots; dropping it lets every worker end once its call returns.
pub(super) struct StatfsPool {
    source: Arc<dyn FsStatsSource>,
    timeout: Duration,
    workers: Vec<Arc<Worker>>,
}

struct Worker {
    slot: Mutex<Slot>,
    /// Signalled when a request is posted or the pool is dropped.
    asked: Condvar,
    /// Signalled when an answer is in the slot.
    answered: Condvar,
}

struct Slot {
    /// The path asked for; while `state` is `Asked` it names the mount the worker is on.
    path: PathBuf,
    state: State,
}

enum State {
    Idle,
    Asked,
    /// `None` when the call failed; the caller takes it and sets `Idle`. An answer that came
    /// after its caller gave up is left here and dropped by the next request.
    Answered(Option<FsStats>),
    Quit,
}

/// A lock that survives a worker that panicked in the source: the slot's data stays valid.
fn lock(worker: &Worker) -> MutexGuard<'_, Slot> {
    worker
        .slot
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StatfsPool {
    pub(super) fn new(source: Arc<dyn FsStatsSource>, timeout: Duration) -> Self {
        StatfsPool {
            source,
            timeout,
            workers: Vec::with_capacity(MAX_WORKERS),
        }
    }

    /// The stats of `path`, or `None` when the call failed, did not answer within the timeout,
    /// or is still running from an earlier scrape.
    pub(super) fn stats(&mut self, path: &Path) -> Option<FsStats> {
        let mut idle = None;
        for (index, worker) in self.workers.iter().enumerate() {
            let slot = lock(worker);
            match slot.state {
                // Still stuck on this very mount: skip it until the call returns.
                State::Asked if slot.path == path => return None,
                State::Asked | State::Quit => {}
                State::Idle | State::Answered(_) => {
                    idle.get_or_insert(index);
                }
            }
        }
        let worker = match idle {
            Some(index) => Arc::clone(&self.workers[index]),
            None => self.start_worker()?,
        };
        let mut slot = lock(&worker);
        slot.path.as_mut_os_string().clear();
        slot.path.push(path);
        slot.state = State::Asked;
        worker.asked.notify_one();
        let deadline = Instant::now() + self.timeout;
        loop {
            match slot.state {
                State::Answered(answer) => {
                    slot.state = State::Idle;
                    return answer;
                }
                State::Asked => {}
                State::Idle | State::Quit => return None,
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            slot = worker
                .answered
                .wait_timeout(slot, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Mounts whose call is still running past its timeout.
    #[cfg(test)]
    pub(super) fn hanging(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| matches!(lock(w).state, State::Asked))
            .count()
    }

    fn start_worker(&mut self) -> Option<Arc<Worker>> {
        if self.workers.len() == MAX_WORKERS {
            return None;
        }
        let worker = Arc::new(Worker {
            slot: Mutex::new(Slot {
                path: PathBuf::with_capacity(256),
                state: State::Idle,
            }),
            asked: Condvar::new(),
            answered: Condvar::new(),
        });
        let (theirs, source) = (Arc::clone(&worker), Arc::clone(&self.source));
        std::thread::Builder::new()
            .name("outpost-statfs".into())
            .stack_size(64 * 1024)
            .spawn(move || work(&theirs, &*source))
            .ok()?;
        self.workers.push(Arc::clone(&worker));
        Some(worker)
    }
}

impl Drop for StatfsPool {
    fn drop(&mut self) {
        for worker in &self.workers {
            lock(worker).state = State::Quit;
            worker.asked.notify_one();
        }
    }
}

fn work(worker: &Worker, source: &dyn FsStatsSource) {
    // The worker's own copy of the path, so that the slot stays unlocked during the call.
    let mut path = PathBuf::with_capacity(256);
    let mut slot = lock(worker);
    loop {
        match slot.state {
            State::Quit => return,
            State::Asked => {}
            State::Idle | State::Answered(_) => {
                slot = worker
                    .asked
                    .wait(slot)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
        }
        path.as_mut_os_string().clear();
        path.push(&slot.path);
        drop(slot);
        let answer = source.stats(&path).ok();
        slot = lock(worker);
        if matches!(slot.state, State::Quit) {
            return;
        }
        slot.state = State::Answered(answer);
        worker.answered.notify_one();
    }
}

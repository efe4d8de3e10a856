//! One agent per WAL directory: an exclusive `flock` on `DIR/lock`, with
//! the holder's pid written into the file for the error a second agent
//! prints.
//!
//! `flock` belongs to the open file, so the kernel releases it whenever the
//! holder's process ends, `kill -9` included: a new agent starts at once
//! after a crash, with no stale-lock cleanup. The pid is the holder's as its
//! own pid namespace sees it (1 in most containers); it is a hint for the
//! operator, not what the lock rests on.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

/// Name of the lock file inside the WAL directory.
pub const LOCK_FILE: &str = "lock";
/// How often a waiting agent tries again.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Why the WAL directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock (and still did after `waited`, zero
    /// when the caller did not wait).
    Held {
        dir: PathBuf,
        holder_pid: Option<u32>,
        waited: Duration,
    },
    Io {
        path: PathBuf,
        err: io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held {
                dir,
                holder_pid,
                waited,
            } => {
                write!(f, "wal: directory {} is in use by another outpost", dir.display())?;
                match holder_pid {
                    Some(pid) => write!(f, " (pid {pid})")?,
                    None => write!(f, " (pid unknown)")?,
                }
                if !waited.is_zero() {
                    write!(f, ", still after waiting {} ms", waited.as_millis())?;
                }
                write!(
                    f,
                    "; one WAL directory serves one agent: stop the other one, point this one at \
                     another --wal-dir, or give it --wal-lock-wait to take over after a rollout"
                )
            }
            LockError::Io { path, err } => write!(f, "wal: cannot lock {}: {err}", path.display()),
        }
    }
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct WalLock {
    _file: File,
}

impl WalLock {
    /// Locks `dir`, creating it if needed, trying again for up to `wait`
    /// while another process holds it.
    pub fn acquire(dir: &Path, wait: Duration) -> Result<WalLock, LockError> {
        std::fs::create_dir_all(dir).map_err(|err| LockError::Io {
            path: dir.to_path_buf(),
            err,
        })?;
        let path = dir.join(LOCK_FILE);
        let io_err = |err| LockError::Io {
            path: path.clone(),
            err,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let started = Instant::now();
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(Errno::WOULDBLOCK) => {}
                Err(e) => return Err(io_err(e.into())),
            }
            let waited = started.elapsed();
            if waited >= wait {
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder_pid: read_pid(&mut file),
                    waited: if wait.is_zero() { wait } else { waited },
                });
            }
            std::thread::sleep(RETRY_EVERY.min(wait - waited));
        }
        write_pid(&mut file).map_err(io_err)?;
        Ok(WalLock { _file: file })
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn write_pid(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_taken_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = WalLock::acquire(dir.path(), Duration::ZERO).unwrap();
        // flock locks belong to open files: a second open in this process
        // conflicts just as another process would.
        match WalLock::acquire(dir.path(), Duration::from_millis(250)) {
            Err(LockError::Held {
                holder_pid, waited, ..
            }) => {
                assert_eq!(holder_pid, Some(std::process::id()));
                assert!(waited >= Duration::from_millis(250));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        let msg = WalLock::acquire(dir.path(), Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        drop(first);
        WalLock::acquire(dir.path(), Duration::ZERO).expect("free again");
    }

    #[test]
    fn a_waiting_agent_takes_over_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = WalLock::acquire(dir.path(), Duration::ZERO).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        let started = Instant::now();
        WalLock::acquire(dir.path(), Duration::from_secs(10)).expect("taken over");
        assert!(started.elapsed() >= Duration::from_millis(250));
        release.join().unwrap();
    }
}

//! Child processes that die with their guard, also when a test panics, and
//! bounded waits.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Pid;
pub use rustix::process::Signal;

/// A running child process, killed and reaped on drop.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Starts `command` with stdout and stderr discarded.
    pub fn spawn(command: &mut Command) -> ChildGuard {
        Self::spawn_with(command, Stdio::null())
    }

    /// Starts `command` with stdout discarded and stderr written to `log`
    /// (created or truncated), for the assertion messages of the test.
    pub fn spawn_logged(command: &mut Command, log: &Path) -> ChildGuard {
        let log = File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        Self::spawn_with(command, log.into())
    }

    fn spawn_with(command: &mut Command, stderr: Stdio) -> ChildGuard {
        let child = command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        ChildGuard(Some(child))
    }

    fn child(&self) -> &Child {
        self.0.as_ref().expect("the child was already reaped")
    }

    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    pub fn signal(&self, signal: Signal) {
        // An error means the child is gone already, which the test's next
        // check of it reports.
        let _ = rustix::process::kill_process(Pid::from_child(self.child()), signal);
    }

    pub fn is_running(&mut self) -> bool {
        self.0.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, then reap: the child is gone when this returns.
    pub fn kill(&mut self) {
        let mut child = self.0.take().expect("the child was already reaped");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The exit status, if the child exits within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let child = self.0.as_mut()?;
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.0 = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then a bounded wait for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.0.as_ref()?;
        self.signal(Signal::TERM);
        self.wait_exit(within)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 200 ms until it gives a value; panics naming `what` after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A log file's text so far ("" before it exists), for assertion messages.
pub fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

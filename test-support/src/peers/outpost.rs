use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::http::{free_port, get_metrics};
use crate::process::{log_text, wait_for, ChildGuard};

/// The agent under test: this build's `outpost` (give it
/// `env!("CARGO_BIN_EXE_outpost")`, which Cargo sets only for agent-linux's
/// integration tests; [`outpost!`](crate::outpost) does), or the command in
/// `OUTPOST_TEST_COMMAND` (split on whitespace), which CI sets to run the
/// same checks against other builds: the aarch64 binary under qemu-user
/// (`qemu-aarch64 target/aarch64-unknown-linux-gnu/release/outpost`) and the
/// container image under runc (`targets/image/runc-outpost.sh BUNDLE`).
#[derive(Clone, Copy)]
pub struct Outpost {
    built: &'static str,
}

/// The [`Outpost`] of the calling test crate's build.
#[macro_export]
macro_rules! outpost {
    () => {
        $crate::Outpost::new(env!("CARGO_BIN_EXE_outpost"))
    };
}

impl Outpost {
    pub fn new(built: &'static str) -> Outpost {
        Outpost { built }
    }

    /// The path of this build's binary, whatever `OUTPOST_TEST_COMMAND` says.
    pub fn binary(&self) -> &'static Path {
        Path::new(self.built)
    }

    /// A command that runs the agent under test, without arguments yet.
    pub fn command(&self) -> Command {
        match std::env::var("OUTPOST_TEST_COMMAND") {
            Ok(line) => {
                let mut words = line.split_whitespace();
                let mut cmd = Command::new(words.next().expect("OUTPOST_TEST_COMMAND is empty"));
                cmd.args(words);
                cmd
            }
            Err(_) => Command::new(self.built),
        }
    }

    /// `outpost run` of `plan` listening on `listen_port`, logging at debug
    /// level to `log`.
    pub fn start(&self, plan: &Path, listen_port: u16, node_name: &str, log: &Path) -> ChildGuard {
        self.start_with(plan, listen_port, node_name, log, &[])
    }

    /// [`start`](Self::start) with more command-line flags.
    pub fn start_with(
        &self,
        plan: &Path,
        listen_port: u16,
        node_name: &str,
        log: &Path,
        extra: &[&str],
    ) -> ChildGuard {
        ChildGuard::spawn_logged(
            self.command()
                .args(["run", "--plan"])
                .arg(plan)
                .args([
                    "--listen",
                    &format!("127.0.0.1:{listen_port}"),
                    "--node-name",
                    node_name,
                ])
                .args(["--log-level", "debug"])
                .args(extra),
            log,
        )
    }

    /// [`start`](Self::start) on a free port, then waits (20 s at most)
    /// until `/metrics` answers; panics with the log if the agent exits
    /// first. Gives the agent and its port.
    pub fn start_ready(&self, plan: &Path, node_name: &str, log: &Path, what: &str) -> (ChildGuard, u16) {
        let port = free_port();
        let mut agent = self.start(plan, port, node_name, log);
        wait_for(what, Duration::from_secs(20), || {
            assert!(agent.is_running(), "{what}: the agent exited\n{}", log_text(log));
            get_metrics(port)
        });
        (agent, port)
    }
}

/// Why this machine cannot give a test's agent a private mount namespace
/// (`unshare -m`, then `mount` in it), if it cannot: that needs root.
pub fn cannot_unshare_mounts() -> Option<String> {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        return Some(format!(
            "needs root for unshare -m and mount (euid is {})",
            euid.as_raw()
        ));
    }
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("`unshare -m true` failed with {s}")),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    }
}

//! Shared by the tests that run the agent inside the test process (`Agent::start*`) rather than
//! as the `outpost` binary: the command line such a run stands for.

use std::path::PathBuf;

use outpost_agent::cli::RunArgs;
use outpost_agent::log;

/// `outpost run --plan PLAN --listen 127.0.0.1:0 --node-name NODE_NAME --log-level LEVEL` with
/// the real `/proc`, `/sys` and `/`.
pub fn run_args(plan: PathBuf, node_name: &str, log_level: log::Level) -> RunArgs {
    RunArgs {
        plan,
        wal_dir: None,
        wal_lock_wait_ms: 0,
        listen: "127.0.0.1:0".parse().unwrap(),
        node_name: node_name.into(),
        node_ip: "127.0.0.1".into(),
        procfs: "/proc".into(),
        sysfs: "/sys".into(),
        rootfs: "/".into(),
        log_format: log::Format::Logfmt,
        log_level,
        kube_service: None,
        service_account_dir: outpost_agent::cli::SERVICE_ACCOUNT_DIR.into(),
    }
}

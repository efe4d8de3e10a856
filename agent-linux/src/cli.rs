//! Command line of `outpost`. Hand-rolled: a handful of flags does not earn
//! an argument-parsing crate in a binary whose size we report.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::log::{Format, Level};

pub const USAGE: &str = "usage: outpost run --plan FILE [--wal-dir DIR] [--wal-lock-wait DURATION]
                   [--listen ADDR:PORT] [--node-name NAME] [--node-ip IP]
                   [--path.procfs DIR] [--path.sysfs DIR] [--path.rootfs DIR]
                   [--kube.service-account-dir DIR]
                   [--log-format logfmt|json] [--log-level debug|info|warn|error]
       outpost chown-wal --wal-dir DIR --owner UID:GID
       outpost --version

--wal-lock-wait: how long to wait for another agent to release the WAL
directory (e.g. 30s, 500ms, 2m; default 0: refuse at once).
--kube.service-account-dir: where in-cluster discovery reads ca.crt and token
(default /var/run/secrets/kubernetes.io/serviceaccount); the API server is
KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT from the environment.
exit codes: 0 stopped by a signal, 1 error, 2 usage, 3 WAL directory in use";

/// Exit code when another process holds the WAL directory.
pub const EXIT_WAL_LOCKED: u8 = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct RunArgs {
    pub plan: PathBuf,
    /// Overrides the plan's `wal.dir`.
    pub wal_dir: Option<PathBuf>,
    /// How long to wait for another agent to let go of the WAL directory.
    pub wal_lock_wait_ms: u64,
    pub listen: SocketAddr,
    pub node_name: String,
    pub node_ip: String,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    pub log_format: Format,
    pub log_level: Level,
    /// `host:port` of the in-cluster API server, from `KUBERNETES_SERVICE_HOST`
    /// and `_PORT`; `None` outside a pod.
    pub kube_service: Option<String>,
    /// Where in-cluster discovery reads the service account's `ca.crt` and `token`.
    pub service_account_dir: PathBuf,
}

/// Where Kubernetes mounts a pod's service-account credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`, an IPv6 host in brackets.
fn kube_service(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let host = env("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty())?;
    let port = env("KUBERNETES_SERVICE_PORT")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "443".into());
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Box<RunArgs>),
    /// Give a root-owned WAL directory to the agent's user (see `wal::chown_dir`).
    ChownWal {
        dir: PathBuf,
        uid: u32,
        gid: u32,
    },
    Version,
    Help,
}

/// Parses `args` (without the program name). `env` looks up environment
/// variables so tests need not touch the process environment.
pub fn parse<I, E>(args: I, env: E) -> Result<Command, String>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Err("no command given".into());
    };
    match first.as_str() {
        "--version" | "-V" | "version" => return Ok(Command::Version),
        "--help" | "-h" | "help" => return Ok(Command::Help),
        "run" => {}
        "chown-wal" => return parse_chown_wal(args),
        other => return Err(format!("unknown command `{other}`")),
    }
    let mut plan = None;
    let mut run = RunArgs {
        plan: PathBuf::new(),
        wal_dir: None,
        wal_lock_wait_ms: 0,
        listen: "127.0.0.1:9464".parse().expect("literal address"),
        node_name: env("NODE_NAME").unwrap_or_default(),
        node_ip: env("NODE_IP").unwrap_or_default(),
        procfs: "/proc".into(),
        sysfs: "/sys".into(),
        rootfs: "/".into(),
        log_format: Format::Logfmt,
        log_level: Level::Info,
        kube_service: kube_service(&env),
        service_account_dir: SERVICE_ACCOUNT_DIR.into(),
    };
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| format!("flag {flag} needs a value")),
            }
        };
        match flag.as_str() {
            "--plan" => plan = Some(PathBuf::from(value()?)),
            "--wal-dir" => run.wal_dir = Some(PathBuf::from(value()?)),
            "--wal-lock-wait" => {
                let v = value()?;
                run.wal_lock_wait_ms = parse_duration_ms(&v).ok_or_else(|| {
                    format!("--wal-lock-wait {v}: expected a duration such as 30s, 500ms or 2m")
                })?;
            }
            "--listen" => {
                let v = value()?;
                run.listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v}: not an address:port ({e})"))?;
            }
            "--node-name" => run.node_name = value()?,
            "--node-ip" => run.node_ip = value()?,
            "--path.procfs" => run.procfs = value()?.into(),
            "--path.sysfs" => run.sysfs = value()?.into(),
            "--path.rootfs" => run.rootfs = value()?.into(),
            "--kube.service-account-dir" => run.service_account_dir = value()?.into(),
            "--log-format" | "--log.format" => {
                let v = value()?;
                run.log_format = match v.as_str() {
                    "logfmt" => Format::Logfmt,
                    "json" => Format::Json,
                    _ => return Err(format!("--log-format {v}: expected logfmt or json")),
                };
            }
            "--log-level" | "--log.level" => {
                let v = value()?;
                run.log_level = Level::from_name(&v)
                    .ok_or_else(|| format!("--log-level {v}: expected debug, info, warn or error"))?;
            }
            _ => return Err(format!("unknown flag `{arg}`")),
        }
    }
    run.plan = plan.ok_or("run needs --plan FILE")?;
    if run.node_name.is_empty() {
        run.node_name = hostname();
    }
    Ok(Command::Run(Box::new(run)))
}

fn parse_chown_wal(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let (mut dir, mut owner) = (None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--wal-dir" => &mut dir,
            "--owner" => &mut owner,
            _ => return Err(format!("chown-wal: unknown flag `{flag}`")),
        };
        *slot = Some(args.next().ok_or_else(|| format!("flag {flag} needs a value"))?);
    }
    let dir = dir.ok_or("chown-wal needs --wal-dir DIR")?;
    let owner = owner.ok_or("chown-wal needs --owner UID:GID")?;
    let ids = owner
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)));
    let Some((uid, gid)) = ids else {
        return Err(format!(
            "--owner {owner}: expected numeric UID:GID such as 65534:65534"
        ));
    };
    Ok(Command::ChownWal {
        dir: dir.into(),
        uid,
        gid,
    })
}

/// `500ms`, `30s`, `2m` or a plain `0`, in milliseconds.
fn parse_duration_ms(v: &str) -> Option<u64> {
    if v == "0" {
        return Some(0);
    }
    let (digits, unit_ms) = if let Some(d) = v.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = v.strip_suffix('s') {
        (d, 1_000)
    } else if let Some(d) = v.strip_suffix('m') {
        (d, 60_000)
    } else {
        return None;
    };
    digits.parse::<u64>().ok()?.checked_mul(unit_ms)
}

/// The kernel's node name: what node_exporter's `nodename` reports too.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn run_with_every_flag() {
        let cmd = parse(
            args("run --plan /p --wal-dir=/w --listen 0.0.0.0:1 --node-ip 10.0.0.1 --path.procfs /host/proc --log-format json --log-level debug"),
            |k| (k == "NODE_NAME").then(|| "n1".to_string()),
        )
        .unwrap();
        let Command::Run(r) = cmd else {
            panic!("not run: {cmd:?}")
        };
        assert_eq!(r.plan, PathBuf::from("/p"));
        assert_eq!(r.wal_dir, Some(PathBuf::from("/w")));
        assert_eq!(r.wal_lock_wait_ms, 0);
        assert_eq!(r.listen, "0.0.0.0:1".parse().unwrap());
        assert_eq!(r.node_name, "n1");
        assert_eq!(r.node_ip, "10.0.0.1");
        assert_eq!(r.procfs, PathBuf::from("/host/proc"));
        assert_eq!(r.sysfs, PathBuf::from("/sys"));
        assert_eq!(r.log_format, Format::Json);
        assert_eq!(r.log_level, Level::Debug);
        assert_eq!(r.kube_service, None);
        assert_eq!(r.service_account_dir, PathBuf::from(SERVICE_ACCOUNT_DIR));
    }

    #[test]
    fn in_cluster_api_server_comes_from_the_environment() {
        let env = |host: &'static str| {
            move |k: &str| match k {
                "KUBERNETES_SERVICE_HOST" => Some(host.to_string()),
                "KUBERNETES_SERVICE_PORT" => Some("6443".to_string()),
                _ => None,
            }
        };
        let run =
            |host: &'static str, flags: &str| match parse(args(&format!("run --plan /p {flags}")), env(host))
            {
                Ok(Command::Run(r)) => r,
                other => panic!("{other:?}"),
            };
        let r = run("10.96.0.1", "--kube.service-account-dir /sa");
        assert_eq!(r.kube_service.as_deref(), Some("10.96.0.1:6443"));
        assert_eq!(r.service_account_dir, PathBuf::from("/sa"));
        assert_eq!(run("fd00::1", "").kube_service.as_deref(), Some("[fd00::1]:6443"));
        assert_eq!(run("", "").kube_service, None);
    }

    #[test]
    fn errors_name_the_flag() {
        assert!(parse(args("run"), |_| None).unwrap_err().contains("--plan"));
        assert!(parse(args("run --plan"), |_| None)
            .unwrap_err()
            .contains("--plan needs a value"));
        assert!(parse(args("run --plan x --bogus 1"), |_| None)
            .unwrap_err()
            .contains("--bogus"));
        assert!(parse(args("run --plan x --listen nope"), |_| None)
            .unwrap_err()
            .contains("--listen nope"));
        assert_eq!(parse(args("--version"), |_| None).unwrap(), Command::Version);
        assert!(parse(args("run --plan x --wal-lock-wait 30"), |_| None)
            .unwrap_err()
            .contains("--wal-lock-wait 30: expected a duration"));
    }

    #[test]
    fn wal_lock_wait_takes_a_duration() {
        for (text, ms) in [
            ("30s", 30_000),
            ("500ms", 500),
            ("2m", 120_000),
            ("0", 0),
            ("0s", 0),
        ] {
            let Command::Run(r) =
                parse(args(&format!("run --plan x --wal-lock-wait {text}")), |_| None).unwrap()
            else {
                panic!("not run")
            };
            assert_eq!(r.wal_lock_wait_ms, ms, "{text}");
        }
        for bad in ["-1s", "s", "1h", "1.5s", "99999999999999999999m"] {
            assert!(
                parse(args(&format!("run --plan x --wal-lock-wait {bad}")), |_| None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn chown_wal_takes_a_directory_and_numeric_owner() {
        assert_eq!(
            parse(
                args("chown-wal --wal-dir /var/lib/outpost/wal --owner 65534:65533"),
                |_| None
            )
            .unwrap(),
            Command::ChownWal {
                dir: "/var/lib/outpost/wal".into(),
                uid: 65534,
                gid: 65533
            }
        );
        for (bad, says) in [
            ("chown-wal --owner 1:1", "--wal-dir DIR"),
            ("chown-wal --wal-dir /w", "--owner UID:GID"),
            (
                "chown-wal --wal-dir /w --owner nobody",
                "--owner nobody: expected numeric",
            ),
            ("chown-wal --wal-dir /w --owner 1:x", "--owner 1:x"),
            ("chown-wal --wal-dir", "--wal-dir needs a value"),
            ("chown-wal --plan /p", "unknown flag `--plan`"),
        ] {
            let e = parse(args(bad), |_| None).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}

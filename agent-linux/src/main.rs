//! `outpost`: runs a compiled plan. See `outpost --help`.

use std::process::ExitCode;

use outpost_agent::agent::{load_plan, Agent};
use outpost_agent::cli::{self, Command};
use outpost_agent::log;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("outpost: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let args = match command {
        Command::Version => {
            println!("outpost {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Help => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::ChownWal { dir, uid, gid } => {
            return match outpost_agent::wal::chown_dir(&dir, uid, gid) {
                Ok(()) => {
                    println!("outpost: {} now belongs to {uid}:{gid}", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("outpost: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Run(args) => *args,
    };
    log::init(args.log_format, args.log_level);
    let plan = match load_plan(&args.plan) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("outpost: {e}");
            return ExitCode::from(1);
        }
    };
    let agent = match Agent::start(args, plan) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("outpost: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    ExitCode::from(agent.run() as u8)
}

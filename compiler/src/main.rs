//! outpostc: check a fleet spec, compile it into plans, explain a plan,
//! print the resource budget, write the Kubernetes manifests, import a
//! Prometheus config, and verify a running deployment. Exit codes: 0 ok, 1 spec errors (or, for verify, a
//! failing row), 2 usage or I/O errors.

use clap::{Args, Parser, Subcommand, ValueEnum};
use outpost_compiler::{budget, explain, import, load_spec, manifests, units, verify, Analysis};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "outpostc",
    version,
    about = "Compile an outpost fleet spec into agent plans"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the spec; writes nothing.
    Check {
        spec: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Write one plan per agent to DIR/<cluster>/[<tenant>/]<role>.plan.
    Compile {
        spec: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Decode a plan: targets, labels, rules, bounds, size, worst-case memory.
    Explain {
        plan: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Per-cluster requests, limits and worst-case memory next to the seed's.
    Budget {
        spec: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Write a kustomize directory per cluster, DIR/<cluster>/kustomization.yaml
    /// and its resources, running the plans the spec compiles to.
    Manifests {
        spec: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[arg(long)]
        deny_warnings: bool,
        /// The outpost image, REGISTRY/outpost[:TAG][@sha256:…]; replaces the spec's `image`.
        #[arg(long)]
        image: Option<String>,
        /// The image's digest, sha256:…, or a file holding it (targets/image/build.sh
        /// writes target/image.digest); pins an image given without one.
        #[arg(long)]
        image_digest: Option<String>,
    },
    /// Write a fleet spec from a prometheus.yml or kube-prometheus-stack values;
    /// every key it cannot translate is reported with its place.
    Import {
        config: PathBuf,
        /// Where to write the spec [default: standard output].
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The cluster's name, when the external labels have no `cluster`.
        #[arg(long)]
        cluster: Option<String>,
        /// The cluster's role, when the external labels have no `role`.
        #[arg(long)]
        role: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Ask the central query API whether every agent and job of the spec is
    /// up, delivering, not failing or dropping, and labelled as the spec says.
    Verify(Box<VerifyArgs>),
}

const USAGE_OR_IO: u8 = 2;
const SPEC_ERRORS: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            spec,
            format,
            deny_warnings,
        } => match load(&spec) {
            Ok(a) => ExitCode::from(report(&a, format, deny_warnings)),
            Err(code) => code,
        },
        Command::Compile {
            spec,
            output,
            format,
            deny_warnings,
        } => {
            let a = match load(&spec) {
                Ok(a) => a,
                Err(code) => return code,
            };
            let status = report(&a, format, deny_warnings);
            if status != 0 {
                return ExitCode::from(status);
            }
            match write_plans(&a, &output) {
                Ok(n) => {
                    if format == Format::Text {
                        eprintln!("wrote {n} plans under {}", output.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(USAGE_OR_IO)
                }
            }
        }
        Command::Explain { plan, format } => {
            let bytes = match std::fs::read(&plan) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", plan.display());
                    return ExitCode::from(USAGE_OR_IO);
                }
            };
            match outpost_core::plan::decode(&bytes) {
                Ok(p) => {
                    match format {
                        Format::Text => print!("{}", explain::explain_text(&p, bytes.len())),
                        Format::Json => println!("{:#}", explain::explain_json(&p, bytes.len())),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", plan.display());
                    ExitCode::from(SPEC_ERRORS)
                }
            }
        }
        Command::Budget { spec, format } => {
            let a = match load(&spec) {
                Ok(a) => a,
                Err(code) => return code,
            };
            if a.has_errors() {
                return ExitCode::from(report(&a, format, false));
            }
            let budgets = budget::cluster_budgets(&a.plans);
            match format {
                Format::Text => print!("{}", budget::budget_text(&budgets)),
                Format::Json => println!("{:#}", budget::budget_json(&budgets)),
            }
            ExitCode::SUCCESS
        }
        Command::Manifests {
            spec,
            output,
            format,
            deny_warnings,
            image,
            image_digest,
        } => {
            let a = match load(&spec) {
                Ok(a) => a,
                Err(code) => return code,
            };
            let status = report(&a, format, deny_warnings);
            if status != 0 {
                return ExitCode::from(status);
            }
            let Some(fleet) = a.fleet.as_ref() else {
                return ExitCode::from(SPEC_ERRORS);
            };
            let pinned = image_digest
                .as_deref()
                .map(manifests::image::digest_arg)
                .transpose()
                .and_then(|digest| manifests::image::resolve(fleet, image.as_deref(), digest.as_deref()));
            let pinned = match pinned {
                Ok(pinned) => pinned,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(USAGE_OR_IO);
                }
            };
            let files = match manifests::render(fleet, &a.plans, &pinned) {
                Ok(files) => files,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(SPEC_ERRORS);
                }
            };
            match manifests::write_files(&files, &output) {
                Ok(()) => {
                    if format == Format::Text {
                        eprintln!(
                            "wrote {} files for {} clusters under {}",
                            files.len(),
                            fleet.clusters.len(),
                            output.display()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: writing manifests under {}: {e}", output.display());
                    ExitCode::from(USAGE_OR_IO)
                }
            }
        }
        Command::Verify(v) => run_verify(*v),
        Command::Import {
            config,
            output,
            cluster,
            role,
            format,
            deny_warnings,
        } => run_import(
            &config,
            output.as_deref(),
            &import::ImportOptions { cluster, role },
            format,
            deny_warnings,
        ),
    }
}

fn run_import(
    config: &Path,
    output: Option<&Path>,
    options: &import::ImportOptions,
    format: Format,
    deny_warnings: bool,
) -> ExitCode {
    let imported = match import::import_file(config, options) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", config.display());
            return ExitCode::from(USAGE_OR_IO);
        }
    };
    let (errors, warnings) = imported.counts();
    match format {
        Format::Text => {
            eprint!("{}", imported.render_text(terminal_width()));
            eprintln!("{}: {errors} error(s), {warnings} warning(s)", config.display());
        }
        Format::Json => println!("{:#}", imported.render_json()),
    }
    let Some(yaml) = imported.yaml.as_ref().filter(|_| errors == 0) else {
        return ExitCode::from(SPEC_ERRORS);
    };
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, yaml) {
                eprintln!("error: writing {}: {e}", path.display());
                return ExitCode::from(USAGE_OR_IO);
            }
        }
        None if format == Format::Text => print!("{yaml}"),
        None => {}
    }
    ExitCode::from(if deny_warnings && warnings > 0 {
        SPEC_ERRORS
    } else {
        0
    })
}

/// What `outpostc verify` is given.
#[derive(Args)]
struct VerifyArgs {
    spec: PathBuf,
    /// Base URL of a Prometheus-compatible query API (Thanos Query, Prometheus).
    #[arg(long)]
    query_url: String,
    /// Header the query API reads the tenant from; check each tenant in its own view.
    #[arg(long)]
    tenant_header: Option<String>,
    /// Tenant to query for agents that write without a tenant header.
    #[arg(long, requires = "tenant_header")]
    default_tenant: Option<String>,
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[arg(long, requires = "key_file")]
    cert_file: Option<PathBuf>,
    #[arg(long, requires = "cert_file")]
    key_file: Option<PathBuf>,
    #[arg(long)]
    insecure_skip_verify: bool,
    #[arg(long)]
    bearer_token_file: Option<PathBuf>,
    /// Range of the rate queries.
    #[arg(long, default_value = verify::DEFAULT_WINDOW)]
    window: String,
    /// A target whose newest sample is older counts as stale [default: per job,
    /// two intervals + batch deadline + remote timeout].
    #[arg(long)]
    max_age: Option<String>,
    /// Largest clock offset against the receiver an agent may report.
    #[arg(long, default_value = "2s")]
    max_clock_offset: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

fn run_verify(v: VerifyArgs) -> ExitCode {
    let usage = |what: &str, e: String| {
        eprintln!("error: {what}: {e}");
        ExitCode::from(USAGE_OR_IO)
    };
    let seconds = |text: &str| units::parse_duration(text).map(|ms| ms as f64 / 1000.0);
    if let Err(e) = units::parse_duration(&v.window) {
        return usage("--window", e);
    }
    let max_age_s = match v.max_age.as_deref().map(seconds).transpose() {
        Ok(s) => s,
        Err(e) => return usage("--max-age", e),
    };
    let max_clock_offset_s = match seconds(&v.max_clock_offset) {
        Ok(s) => s,
        Err(e) => return usage("--max-clock-offset", e),
    };
    let a = match load(&v.spec) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if a.has_errors() {
        return ExitCode::from(report(&a, v.format, false));
    }
    let api = match verify::QueryApi::new(&verify::ApiOptions {
        url: v.query_url,
        tenant_header: v.tenant_header,
        default_tenant: v.default_tenant,
        ca_file: v.ca_file,
        cert_file: v.cert_file,
        key_file: v.key_file,
        insecure_skip_verify: v.insecure_skip_verify,
        bearer_token_file: v.bearer_token_file,
    }) {
        Ok(api) => api,
        Err(e) => return usage("query API", e.to_string()),
    };
    let thresholds = verify::Thresholds {
        window: v.window,
        max_age_s,
        max_clock_offset_s,
    };
    match verify::verify(&a.plans, &api, &thresholds) {
        Ok(r) => {
            match v.format {
                Format::Text => print!("{}", r.render_text()),
                Format::Json => println!("{:#}", r.render_json()),
            }
            ExitCode::from(if r.failed() > 0 { SPEC_ERRORS } else { 0 })
        }
        Err(e) => usage("query API", e.to_string()),
    }
}

fn load(spec: &Path) -> Result<Analysis, ExitCode> {
    load_spec(spec).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", spec.display());
        ExitCode::from(USAGE_OR_IO)
    })
}

/// Prints the diagnostics and returns the exit status they call for.
fn report(a: &Analysis, format: Format, deny_warnings: bool) -> u8 {
    match format {
        Format::Text => {
            if !a.diagnostics.is_empty() {
                eprint!("{}", a.render_text(terminal_width()));
            }
            let (errors, warnings) = a.counts();
            eprintln!("{}: {errors} error(s), {warnings} warning(s)", a.name());
        }
        Format::Json => println!("{:#}", a.render_json()),
    }
    if a.has_errors() || (deny_warnings && a.has_warnings()) {
        SPEC_ERRORS
    } else {
        0
    }
}

/// Diagnostics wrap at `COLUMNS`, or 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

fn write_plans(a: &Analysis, dir: &Path) -> Result<usize, String> {
    for agent in &a.plans {
        let path = dir.join(agent.rel_path());
        let bytes = outpost_core::plan::encode(&agent.plan)
            .map_err(|e| format!("encoding {}: {e}", path.display()))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(a.plans.len())
}

//! The `proctor` command line.

pub mod blast_radius_table;
pub mod inventory_table;
pub mod migration_plan;
pub mod policy_check;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{
    config::Config,
    kernel::doctor,
    secrets::inventory::{self, InventoryStore},
};

#[derive(Debug, Parser)]
#[command(
    name = "proctor",
    version,
    about = "Kernel-attested workload identity and static-credential monitoring"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (with no --config: the embedded default).
    Run {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Serve /metrics, /healthz and /readyz on ADDR (`host:port`) instead
        /// of the config's metrics.listen; in a pod, `$(POD_IP):9464`, which
        /// the kubelet expands from the env var POD_IP.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Report what this kernel supports, with a verdict for each item.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Ask the running agent who PID is: its kernel-attested identity and
    /// selectors.
    Attest {
        pid: i32,
        #[arg(long)]
        json: bool,
        /// The agent's API socket.
        #[arg(long, value_name = "PATH", default_value = crate::api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Events from the running agent (JSON Lines): the recent ones, and with
    /// --follow the live ones after them.
    Events {
        #[arg(long)]
        follow: bool,
        /// Only this kind (repeatable): process_exec, process_exit, file_open,
        /// net_connect, finding, agent_status.
        #[arg(long = "kind", value_name = "K")]
        kinds: Vec<String>,
        /// Findings of this severity or higher only (info, low, medium, high, critical).
        #[arg(long, value_name = "SEVERITY")]
        min_severity: Option<String>,
        /// The agent's API socket.
        #[arg(long, value_name = "PATH", default_value = crate::api::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// The static-secret inventory: every catalogued secret on this node, its
    /// age and who read it (read from the agent's state, live or not).
    Inventory {
        /// The agent's config, to find its state_dir.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Blast radius of one secret (its path, catalog id or fingerprint):
        /// every workload that read it and where they connected afterwards.
        #[arg(long, value_name = "SECRET", conflicts_with = "migration_plan")]
        secret: Option<String>,
        /// Each secret's readers grouped into workloads by kernel evidence,
        /// with the `spire-server entry create` command that would identify
        /// each one and the destinations it used the secret against.
        #[arg(long)]
        migration_plan: bool,
        /// Trust domain of the suggested SPIFFE IDs (--migration-plan).
        #[arg(long, value_name = "DOMAIN", default_value = "example.org")]
        trust_domain: String,
        /// SPIFFE ID of the node's SPIRE agent for -parentID (--migration-plan;
        /// default: the commands read $PARENT_ID).
        #[arg(long, value_name = "SPIFFE_ID")]
        parent_id: Option<String>,
    },
    /// Run as a SPIRE agent WorkloadAttestor plugin (started by the SPIRE
    /// agent, which speaks the go-plugin protocol; not for use by hand). The
    /// plugin asks the running agent over its API socket.
    SpirePlugin,
    /// Policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a config/policy file; errors name the line.
    Check { file: PathBuf },
}

/// Logs go to stderr so stdout stays pure JSON Lines (and, in plugin mode,
/// free for the go-plugin handshake line); `hclog` makes them the JSON lines
/// a go-plugin host re-logs at their level.
fn init_logging(hclog: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROCTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if hclog {
        fmt.event_format(crate::api::spire_plugin::hclog::HclogJson)
            .try_init()
    } else {
        fmt.try_init()
    };
}

/// Parses the command line and runs it; the exit code is the process's.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let hclog =
        matches!(cli.command, Command::SpirePlugin) && crate::api::spire_plugin::started_by_host();
    init_logging(hclog);
    match dispatch(cli.command) {
        Ok(code) => code,
        // The host shows only what it can parse at error level.
        Err(e) if hclog => {
            tracing::error!("proctor: {e:#}");
            1
        }
        Err(e) => {
            eprintln!("proctor: {e:#}");
            1
        }
    }
}

fn dispatch(cmd: Command) -> Result<i32> {
    match cmd {
        Command::Run {
            config,
            metrics_listen,
        } => {
            let source = crate::daemon::ConfigSource::open(config)?;
            let mut cfg = source.config()?;
            if let Some(addr) = metrics_listen {
                cfg.metrics.listen = addr.to_string();
            }
            crate::daemon::run(cfg, source)?;
            Ok(0)
        }
        Command::Attest { pid, json, socket } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let id = rt.block_on(crate::api::client::attest(&socket, pid))?;
            if json {
                let v = crate::api::client::identity_json(&id);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", crate::api::client::render_identity_text(&id));
            }
            Ok(0)
        }
        Command::Events {
            follow,
            kinds,
            min_severity,
            socket,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let query = crate::api::client::EventQuery {
                kinds,
                min_severity,
                follow,
                backlog: None,
            };
            rt.block_on(crate::api::client::print_events(
                &socket,
                query,
                std::io::stdout().lock(),
            ))?;
            Ok(0)
        }
        Command::Doctor { json } => {
            let checks = doctor::run();
            if json {
                println!("{}", serde_json::to_string_pretty(&checks)?);
            } else {
                print!("{}", doctor::render_text(&checks));
            }
            Ok(if doctor::can_run(&checks) { 0 } else { 1 })
        }
        Command::DefaultConfig => {
            print!("{}", crate::config::DEFAULT_CONFIG);
            Ok(0)
        }
        Command::Inventory {
            config,
            json,
            secret,
            migration_plan,
            trust_domain,
            parent_id,
        } => {
            let cfg = Config::load(config.as_deref())?;
            let store = InventoryStore::open_read_only(&inventory::default_path(&cfg.state_dir))?;
            if migration_plan {
                let plan = store.migration_plan(crate::clock::now_ns())?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&plan)?);
                } else {
                    let reg = migration_plan::Registration {
                        trust_domain: &trust_domain,
                        parent_id: parent_id.as_deref(),
                    };
                    print!("{}", migration_plan::render_migration_plan(&plan, &reg));
                }
                return Ok(0);
            }
            if let Some(key) = secret {
                let found = store.blast_radius(&key, crate::clock::now_ns())?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&found)?);
                } else {
                    print!("{}", blast_radius_table::render_blast_radius(&key, &found));
                }
                return Ok(if found.is_empty() { 1 } else { 0 });
            }
            let items = store.items(crate::clock::now_ns())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                print!("{}", inventory_table::render_table(&items));
            }
            Ok(0)
        }
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => Ok(crate::cli::policy_check::run(&file)),
        Command::SpirePlugin => crate::api::spire_plugin::run(),
    }
}

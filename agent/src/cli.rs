//! The `proctor` command line.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{
    config::Config,
    daemon::Agent,
    doctor,
    inventory_store::{self, InventoryStore},
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
    },
    /// Report what this kernel supports, with a verdict for each item.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// The static-secret inventory: every catalogued secret on this node, its
    /// age and who read it (read from the agent's state, live or not).
    Inventory {
        /// The agent's config, to find its state_dir.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
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

fn init_logging() {
    // Logs go to stderr so stdout stays pure JSON Lines.
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROCTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parses the command line and runs it; the exit code is the process's.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("proctor: {e:#}");
            1
        }
    }
}

fn dispatch(cmd: Command) -> Result<i32> {
    match cmd {
        Command::Run { config } => {
            let cfg = Config::load(config.as_deref())?;
            // One thread for the whole pipeline: reader, table and emitter hand
            // events to each other without cross-thread wakeups (which cost more
            // than the work itself). Hashing runs on the blocking pool.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let agent = Agent::start(cfg)?;
                agent.run().await
            })?;
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
        Command::Inventory { config, json } => {
            let cfg = Config::load(config.as_deref())?;
            let store =
                InventoryStore::open_read_only(&inventory_store::default_path(&cfg.state_dir))?;
            let items = store.items(crate::clock::now_ns())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                print!("{}", inventory_store::render_table(&items));
            }
            Ok(0)
        }
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => Ok(crate::policy_check::run(&file)),
    }
}

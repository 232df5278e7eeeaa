//! `viz`: the command-line front end. Thin on purpose: parsing, logging, and wiring
//! the engine (viz-client) to the host (viz-server) or the join driver.

mod admin;
mod bench;
mod bench_codec;
mod bench_seal;
mod cli;
mod config;
mod demo;
mod echo;
mod keyboard;
mod loadtest;
mod proxy;
mod run;
mod send;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat};

fn init_logging(debug: bool, format: LogFormat, server: bool) {
    // A server's log is its output (joins, statistics); a client's is its console.
    let default = if debug {
        "debug"
    } else if server {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs a command's future on a single-threaded runtime. When the command is done,
/// blocking work still running (a DNS lookup, an HTTP fetch) gets a moment to finish
/// and is then abandoned: nothing may keep the process alive after its command ended.
fn block_on(command: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(command);
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

/// A call's options with what the config file says filled in where the command line
/// said nothing; a config file with mistakes stops the call before it starts.
fn with_config(command: Command, matches: &clap::ArgMatches) -> anyhow::Result<Command> {
    let sub = matches.subcommand().map(|(_, m)| m);
    Ok(match (command, sub) {
        (Command::Host(mut a), Some(m)) => {
            config::apply_to_call(&config::load()?, m, &mut a.common);
            Command::Host(a)
        }
        (Command::Join(mut a), Some(m)) => {
            let config = config::load()?;
            config::apply_to_call(&config, m, &mut a.common);
            if a.address.is_none() {
                a.address = config.address.map(toml::Spanned::into_inner);
            }
            Command::Join(a)
        }
        (other, _) => other,
    })
}

fn main() -> std::process::ExitCode {
    let args = cli::rewrite_legacy(std::env::args().collect());
    let matches = Cli::command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.debug, cli.log_format, matches!(cli.command, Command::Serve(_)));
    let result = with_config(cli.command, &matches).and_then(|command| match command {
        Command::Devices => run::devices(),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Host(a) => block_on(run::host(a)),
        Command::Join(a) => block_on(run::join(a)),
        Command::Send(a) => block_on(send::run(a)),
        Command::Serve(a) => block_on(run::serve(a)),
        Command::Admin(a) => block_on(admin::run(a)),
        Command::Loadtest(a) => block_on(loadtest::run(a)),
        Command::Netsim(a) => block_on(proxy::run(a)),
        Command::Config { command } => config::run(command),
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("viz: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

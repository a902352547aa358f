//! The `subledger` binary: the HTTP server and the command-line interface.
//! Both call the same service layer on the same database.

mod cli;
mod commands;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the request path allocates and
/// frees small buffers across threads, where glibc's malloc spent a tenth of
/// the server's CPU (measured with perf under the benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cli::{Cli, Command, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, None | Some(Command::Serve(_))));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the tokio runtime starts");
    let outcome = runtime.block_on(async move {
        match cli.command {
            None => serve::run(&cli.database_url, cli.account_limit_default, ServeArgs::default()).await,
            Some(Command::Serve(args)) => serve::run(&cli.database_url, cli.account_limit_default, args).await,
            Some(command) => commands::run(&cli.database_url, cli.account_limit_default, command).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; stdout is kept for what commands print. The server logs
/// at `info` by default, commands only at `warn`; `RUST_LOG` overrides both.
fn init_logging(server: bool) {
    let default = if server { "info,sqlx=warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

//! `fake-graph`: the fake Graph API as a process, for benchmarks and for
//! subledger servers under test. Seed and steer it with `POST /__control`
//! (or `--seed FILE`, a JSON array of controls); it runs until stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use subledger_fake_graph::{Control, FakeGraph, FakeOptions};

#[derive(Parser)]
#[command(about = "A fake of Meta's Graph API (the endpoints subledger calls)")]
struct Args {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// Every call answers this many milliseconds late.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Graph API version served (`/{version}/…`).
    #[arg(long, default_value = "v23.0")]
    api_version: String,
    /// A JSON file holding an array of controls applied at start.
    #[arg(long)]
    seed: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let fake = FakeGraph::start_with(FakeOptions { listen: args.listen, api_version: args.api_version, latency: Duration::from_millis(args.latency_ms) }).await?;
    if let Some(path) = args.seed {
        let controls: Vec<Control> = serde_json::from_slice(&std::fs::read(&path)?)?;
        fake.seed(controls).map_err(|error| format!("{}: {error}", path.display()))?;
    }
    println!("fake-graph listening on {}/{}", fake.base_url(), fake.api_version());
    tokio::signal::ctrl_c().await?;
    Ok(())
}

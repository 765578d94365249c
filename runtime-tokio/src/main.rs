//! `graspd`: parse the configuration, start logging, open the data directory, serve
//! until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use grasp_runtime::config::{Config, init_logging};
use grasp_runtime::server::Server;
use grasp_runtime::{driver, ops};
use tokio::net::TcpListener;

/// graspd allocates on jemalloc: with glibc's allocator, merging freed chunks
/// (`malloc_consolidate`) was a third of the engine's cache misses with 100k waiting
/// events; on jemalloc the engine bench ran state verdicts 1.5× and fetch results 1.6×
/// faster, ingest into purgatory 15 % faster, at the same memory per waiting event
/// (mimalloc was as fast but held 25 % more; docs/performance.md, fourth round).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = config.validate() {
        eprintln!("graspd: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = init_logging(&config.log_level) {
        eprintln!("graspd: {e}");
        return ExitCode::from(2);
    }
    if let Some(grasp_runtime::config::Subcommand::Purgatory { json }) = config.command {
        return match grasp_runtime::purgatory_cmd::run(config.listen, &config.base_path(), json)
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("graspd purgatory: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(grasp_runtime::config::Subcommand::Check) = config.command {
        println!("graspd check: {}", config.data_dir.display());
        return match grasp_runtime::check::run(&config.data_dir, config.maintainer_model).await {
            Ok(report) => {
                print!("{report}");
                if report.is_clean() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("graspd check: {e}");
                ExitCode::from(2)
            }
        };
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, on stderr where the logs go too (not also as a log line).
            eprintln!("graspd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let listen = config.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    // With port 0 the kernel picks the port; the default public URL must name it.
    config.listen = listener.local_addr()?;
    let mut server = Server::open(config).await?;
    let (engine, mut task) = driver::start(
        server.config(),
        server.store().clone(),
        server.hub().clone(),
        server.repos().clone(),
    )
    .await
    .map_err(|e| format!("cannot start the engine: {e}"))?;
    server.add_routes(ops::routes(engine.clone(), server.repos().clone()));
    let config = server.config();
    let base = config.public_base();
    println!(
        "graspd {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?
    );
    println!("  relay:    {}", config.relay_url());
    println!("  git:      {base}/<npub>/<identifier>.git");
    println!("  NIP-11:   curl -H 'Accept: application/nostr+json' {base}/");
    println!("  metrics:  {base}/metrics");
    println!("  waiting:  {base}/purgatory (local clients), or `graspd purgatory`");
    println!("  data dir: {}", config.data_dir.display());
    let handle = Arc::new(engine);
    let serving = server.serve(listener, handle.clone(), handle, shutdown_signal());
    tokio::select! {
        served = serving => served?,
        ended = task.ended() => engine_died(ended),
    }
    // In-flight requests are done (or out of grace): the engine handles what they
    // queued, its writes settle, then it stops.
    if let Err(e) = task.stop(ENGINE_STOP_GRACE).await {
        tracing::error!("{e}; exiting without waiting for it");
        exit(1);
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long the engine task may take to settle its writes after a shutdown signal.
const ENGINE_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The engine task ended while serving: without it every event and push would be
/// refused, so graspd exits non-zero and the service manager restarts it (what was
/// acknowledged is durable; the journal restores what waits).
fn engine_died(ended: Result<(), driver::TaskEnd>) -> ! {
    match ended {
        Err(e) => tracing::error!("{e}; exiting so that graspd can be restarted"),
        Ok(()) => tracing::error!(
            "the engine task stopped while serving; exiting so that graspd can be restarted"
        ),
    }
    exit(1)
}

/// Ends the process now: not through the runtime's drop, which would wait for every
/// blocking task (a stuck git child included).
fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

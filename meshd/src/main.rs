//! meshd: parses flags and runs the daemon (see the library for everything else).

use clap::Parser;

// The allocator is chosen by a cargo feature; `meshd/bench/idle-rss.sh` measures each.
#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("choose one allocator feature: jemalloc or mimalloc");

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = meshd::cli::Args::parse();
    meshd::run(args)
}

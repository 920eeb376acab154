//! The control API on the Unix socket (meshctl ⇄ meshd). Not built yet: see issue 3.

use std::sync::Arc;

use crate::cli::Args;
use crate::Daemon;

/// Starts serving the control API on `args.socket`. Until it is built, this does nothing.
pub async fn start(_daemon: Arc<Daemon>, _args: &Args) -> std::io::Result<()> {
    Ok(())
}

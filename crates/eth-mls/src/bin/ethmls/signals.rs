//! How long-running commands (`node`, `devnet`, `watch`, `chat`) learn they should end:
//! SIGINT (Ctrl-C) or SIGTERM, or their standard input closing (scripts). They then finish the
//! step they are in, let queued frames leave, print their result and exit 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once SIGINT or SIGTERM arrived (after [`listen`]).
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Whether a signal asked this process to end.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Takes SIGINT and SIGTERM from now on (instead of their default of ending the process at
/// once, mid-write): the returned flag is set when one arrives.
pub fn listen() -> Stop {
    let stop = Stop::default();
    let flag = stop.0.clone();
    tokio::spawn(async move {
        signal().await;
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

/// Resolves at the first SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves when standard input reaches its end. It is read on a plain thread, never a
/// runtime's blocking task: a runtime waits for those when it shuts down, and a read of a
/// terminal that nobody types into never ends (Ctrl-C then left the process hanging).
pub fn stdin_closed() -> impl std::future::Future<Output = ()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = std::io::Read::read(&mut stdin, &mut sink) {
            if n == 0 {
                break;
            }
        }
        let _ = tx.send(());
    });
    async move {
        let _ = rx.await;
    }
}

/// Resolves at a signal or when standard input closes, whichever comes first.
pub async fn signal_or_end_of_input() {
    let closed = stdin_closed();
    tokio::select! {
        _ = signal() => {}
        _ = closed => {}
    }
}

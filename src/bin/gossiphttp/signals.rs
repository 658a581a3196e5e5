//! Signals a running `gossiphttp node` reads: Ctrl-C and SIGTERM leave
//! the cluster and stop; SIGUSR1 and SIGUSR2 move the node along ckit's
//! states, as ckit's `Node.ChangeState` does for a Go caller.

#[cfg(feature = "cluster")]
use gossiphttp::cluster::{CkitState, Node};

/// Resolves when Ctrl-C or (on Unix) SIGTERM arrives.
pub async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The ckit state a signal asks for: SIGUSR1 a participant (a viewer
/// started with `--ckit-state viewer` takes keys once it is ready), SIGUSR2
/// terminating (a participant hands its keys over before it leaves).
/// ckit allows only viewer → participant → terminating: any other step
/// is refused, logged with both states, and changes nothing.
///
/// Runs until the process ends; never resolves where there are no such
/// signals (not Unix) or they cannot be watched (logged).
#[cfg(feature = "cluster")]
pub async fn ckit_state_changes(node: &Node) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|e| {
                    tracing::warn!("cannot watch {name}, so it cannot change the ckit state: {e}")
                })
                .ok()
        };
        let (Some(mut usr1), Some(mut usr2)) = (
            watch(SignalKind::user_defined1(), "SIGUSR1"),
            watch(SignalKind::user_defined2(), "SIGUSR2"),
        ) else {
            return std::future::pending().await;
        };
        loop {
            let (to, signal) = tokio::select! {
                _ = usr1.recv() => (CkitState::Participant, "SIGUSR1"),
                _ = usr2.recv() => (CkitState::Terminating, "SIGUSR2"),
            };
            match node.set_ckit_state(to).await {
                Ok(()) => tracing::info!(state = %to, "{signal}: ckit state changed"),
                Err(e) => tracing::warn!(state = %to, "{signal}: ckit state not changed: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = node;
        std::future::pending().await
    }
}

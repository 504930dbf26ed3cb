//! The rotation scheduler: wakes every tick (or when asked), revokes
//! credentials whose grace period ended, and executes due and interrupted
//! runs on blocking threads.

use std::time::Duration;

use crate::state::Shared;

/// Runs the scheduler until the task is aborted.
pub async fn run(state: Shared, tick: Duration) {
    loop {
        let s = state.clone();
        let work = tokio::task::spawn_blocking(move || {
            if let Err(e) = s.engine.revoke_due() {
                tracing::warn!(error = %e, "revoking due credentials failed");
            }
            s.engine.due_runs()
        })
        .await;
        match work {
            Ok(Ok(runs)) => {
                for id in runs {
                    let s = state.clone();
                    tokio::task::spawn_blocking(move || s.engine.execute(&id));
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "scheduler pass failed"),
            Err(e) => tracing::error!(error = %e, "scheduler pass panicked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = state.wake_scheduler.notified() => {}
        }
    }
}

//! The rotation scheduler: wakes every tick (or when asked), revokes
//! credentials whose grace period ended, and executes due and interrupted
//! runs on blocking threads.

use std::time::Duration;

use crate::state::Shared;

/// Runs the scheduler until the task is aborted.
pub async fn run(state: Shared, tick: Duration) {
    // Expiry warnings are checked once a minute of the server's clock (so a
    // development time shift triggers them at once).
    let mut last_expiry_check: Option<i64> = None;
    loop {
        let now = state.clock.unix();
        if last_expiry_check.is_none_or(|t| now - t >= 60) {
            last_expiry_check = Some(now);
            let s = state.clone();
            let checked = tokio::task::spawn_blocking(move || {
                let tenants: Vec<String> =
                    s.store.tenant_list()?.into_iter().map(|t| t.id).collect();
                s.engine
                    .notify_expiring(&tenants)
                    .map_err(|e| lockstep_store::StoreError::Backend(e.to_string()))
            })
            .await;
            if let Ok(Err(e)) = checked {
                tracing::warn!(error = %e, "credential expiry check failed");
            }
        }
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

//! Work that waits for the disk (an fsync'd commit, a synced audit record),
//! started from async handlers.

/// Runs `f`, which may block, from async code. On a worker of the
/// multi-threaded runtime it tells tokio first (`block_in_place`), so that
/// the worker's other tasks (other requests on the same core) move to
/// another thread instead of waiting behind the disk.
pub(crate) fn in_place<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

//! The clock abstraction: everything that depends on "now" asks a [`Clock`],
//! so that schedules can be tested by moving time instead of waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// The current instant as whole seconds since the Unix epoch.
    fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

/// A clock shared by every component of a running server.
pub type SharedClock = Arc<dyn Clock>;

/// Wall-clock time, optionally shifted forward by a development offset.
#[derive(Debug, Default)]
pub struct SystemClock {
    shift_seconds: AtomicI64,
}

impl SystemClock {
    /// A clock that reads the system time unshifted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock forward by `seconds` (development time shift).
    pub fn shift_forward(&self, seconds: i64) {
        self.shift_seconds
            .fetch_add(seconds.max(0), Ordering::SeqCst);
    }

    /// How far this clock has been shifted, in seconds.
    pub fn shifted_by(&self) -> i64 {
        self.shift_seconds.load(Ordering::SeqCst)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.shifted_by())
    }
}

/// A clock that only moves when told to; for unit tests.
#[derive(Debug)]
pub struct TestClock {
    unix: AtomicI64,
}

impl TestClock {
    /// A clock frozen at `unix` seconds.
    pub fn at(unix: i64) -> Self {
        Self {
            unix: AtomicI64::new(unix),
        }
    }

    /// Moves the clock by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.unix.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.unix.load(Ordering::SeqCst))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

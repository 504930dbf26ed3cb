//! The consumer's cache: the latest value of each secret it uses, kept
//! fresh by one background long-poll watch per secret, and refetched at
//! once when the value is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::{Client, Error};

/// One version of a secret, as the cache holds it.
#[derive(Clone)]
pub struct CachedSecret {
    /// The version id (32 hex characters).
    pub version: String,
    /// The value; wiped when the last copy is dropped.
    pub value: Zeroizing<String>,
    /// The content type, if any.
    pub content_type: Option<String>,
    /// Expiry (Unix seconds), if any.
    pub expires: Option<i64>,
}

impl std::fmt::Debug for CachedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSecret")
            .field("version", &self.version)
            .field("value", &"<redacted>")
            .field("content_type", &self.content_type)
            .field("expires", &self.expires)
            .finish()
    }
}

/// The latest values of the secrets a consumer uses. Cheap to clone (clones
/// share the cache); dropping the last clone stops the background watches.
///
/// The first [`get`](Self::get) of a name reads the secret and starts a
/// background watch of it (a long-poll loop that survives server restarts,
/// retrying with backoff and logging one warning per outage). Later calls
/// answer from memory, so reads cost nothing and keep working while the
/// server is away.
#[derive(Clone)]
pub struct SecretCache {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

/// One secret's slot.
struct Entry {
    name: String,
    current: watch::Sender<Option<Arc<CachedSecret>>>,
    /// Serializes fetches, so that concurrent callers share one.
    fetch: tokio::sync::Mutex<()>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl Entry {
    fn current(&self) -> Option<Arc<CachedSecret>> {
        self.current.borrow().clone()
    }

    /// Makes `new` the current version unless it already is; returns the
    /// current version and whether it changed.
    fn publish(&self, new: CachedSecret) -> (Arc<CachedSecret>, bool) {
        let new = Arc::new(new);
        let mut current = Arc::clone(&new);
        let changed = self.current.send_if_modified(|cur| match cur {
            Some(c) if c.version == new.version => {
                current = Arc::clone(c);
                false
            }
            _ => {
                *cur = Some(Arc::clone(&new));
                true
            }
        });
        (current, changed)
    }

    fn stop(&self) {
        if let Some(h) = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            h.abort();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let entries = self.entries.get_mut().unwrap_or_else(|p| p.into_inner());
        for entry in entries.values() {
            entry.stop();
        }
    }
}

impl SecretCache {
    /// An empty cache over `client`.
    pub fn new(client: Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The client the cache reads through.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    fn entry(&self, name: &str) -> Arc<Entry> {
        let mut entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(entries.entry(name.to_ascii_lowercase()).or_insert_with(|| {
            Arc::new(Entry {
                name: name.to_owned(),
                current: watch::Sender::new(None),
                fetch: tokio::sync::Mutex::new(()),
                watcher: Mutex::new(None),
            })
        }))
    }

    /// The latest value of `name`: from memory once the secret has been
    /// read, else read now (and watched from then on).
    pub async fn get(&self, name: &str) -> Result<Zeroizing<String>, Error> {
        Ok(self.get_secret(name).await?.value.clone())
    }

    /// Like [`get`](Self::get), with the version and attributes.
    pub async fn get_secret(&self, name: &str) -> Result<Arc<CachedSecret>, Error> {
        let entry = self.entry(name);
        if let Some(s) = entry.current() {
            return Ok(s);
        }
        let _one_fetch = entry.fetch.lock().await;
        if let Some(s) = entry.current() {
            return Ok(s);
        }
        self.fetch(&entry).await
    }

    /// Reads the latest version from the server now (whatever the cache
    /// holds) and caches it.
    pub async fn refresh(&self, name: &str) -> Result<Arc<CachedSecret>, Error> {
        let entry = self.entry(name);
        let _one_fetch = entry.fetch.lock().await;
        self.fetch(&entry).await
    }

    async fn fetch(&self, entry: &Arc<Entry>) -> Result<Arc<CachedSecret>, Error> {
        let fetched = self.inner.client.get_secret(&entry.name).await?;
        let (current, _) = entry.publish(fetched);
        self.start_watch(entry);
        Ok(current)
    }

    /// Call when the value of `name` was refused by the service it
    /// authenticates to (see
    /// [`is_stale_credential_error`](crate::is_stale_credential_error)):
    /// refetches the latest version and returns its value if it differs
    /// from what the cache held when the call began, `None` if the cache
    /// already had the latest.
    ///
    /// Many tasks sharing one cache may see the same failure; a task whose
    /// call finds `None` should [`get`](Self::get) again (another task may
    /// just have refreshed it), or use
    /// [`on_auth_failure_of`](Self::on_auth_failure_of), which compares
    /// with the version that failed.
    pub async fn on_auth_failure(&self, name: &str) -> Result<Option<Zeroizing<String>>, Error> {
        let entry = self.entry(name);
        let before = entry.current().map(|s| s.version.clone());
        let latest = self.refresh(name).await?;
        Ok((before.as_deref() != Some(latest.version.as_str())).then(|| latest.value.clone()))
    }

    /// Call when version `failed_version` of `name` was refused: returns
    /// the latest version if it is another one (from memory when the cache
    /// already moved on, else refetched), `None` when the vault holds
    /// nothing newer.
    pub async fn on_auth_failure_of(
        &self,
        name: &str,
        failed_version: &str,
    ) -> Result<Option<Arc<CachedSecret>>, Error> {
        let entry = self.entry(name);
        let newer = |s: &Arc<CachedSecret>| !s.version.eq_ignore_ascii_case(failed_version);
        if let Some(s) = entry.current().filter(newer) {
            return Ok(Some(s));
        }
        let _one_fetch = entry.fetch.lock().await;
        // Another caller may have refetched while this one waited.
        if let Some(s) = entry.current().filter(newer) {
            return Ok(Some(s));
        }
        let latest = self.fetch(&entry).await?;
        Ok(Some(latest).filter(newer))
    }

    /// A receiver that sees every new version of `name` (reads it first if
    /// needed). Its current value is the latest version, marked as seen.
    pub async fn subscribe(
        &self,
        name: &str,
    ) -> Result<watch::Receiver<Option<Arc<CachedSecret>>>, Error> {
        self.get_secret(name).await?;
        Ok(self.entry(name).current.subscribe())
    }

    /// Stops watching `name` and forgets its value.
    pub fn forget(&self, name: &str) {
        let removed = self
            .inner
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name.to_ascii_lowercase());
        if let Some(entry) = removed {
            entry.stop();
        }
    }

    /// Whether a background watch of `name` is running.
    pub fn is_watching(&self, name: &str) -> bool {
        let entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(&name.to_ascii_lowercase()).is_some_and(|e| {
            e.watcher
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .is_some_and(|h| !h.is_finished())
        })
    }

    fn start_watch(&self, entry: &Arc<Entry>) {
        if !self.inner.client.config().watch {
            return;
        }
        let mut watcher = entry.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if watcher.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                *watcher = Some(rt.spawn(watch_loop(self.inner.client.clone(), Arc::clone(entry))));
            }
            Err(_) => tracing::warn!(
                secret = %entry.name,
                "no Tokio runtime: the secret is not watched, only refreshed on demand"
            ),
        }
    }
}

/// Long-polls the server for new versions of one secret, forever (until
/// aborted). While the server cannot be reached, it keeps the cached value,
/// retries with backoff, and logs one warning when the outage starts and
/// one line when it ends.
async fn watch_loop(client: Client, entry: Arc<Entry>) {
    let retry = client.config().retry;
    let half_wait = std::time::Duration::from_secs(client.config().watch_seconds()) / 2;
    let mut failures: u32 = 0;
    let mut outage: Option<Instant> = None;
    loop {
        let after = entry.current().map(|s| s.version.clone());
        let started = Instant::now();
        match client.watch_secret(&entry.name, after.as_deref()).await {
            Ok(found) => {
                if let Some(since) = outage.take() {
                    tracing::info!(
                        secret = %entry.name,
                        seconds = since.elapsed().as_secs(),
                        "watch of the secret restored"
                    );
                }
                failures = 0;
                let mut idle = found.is_none() && started.elapsed() < half_wait;
                if let Some(s) = found {
                    let version = s.version.clone();
                    let (_, changed) = entry.publish(s);
                    if changed {
                        tracing::debug!(secret = %entry.name, %version, "new version");
                    } else if after.as_deref() == Some(version.as_str()) {
                        // The server answered with the version we have.
                        idle = true;
                    }
                }
                if idle {
                    // Never spin against a server that answers at once.
                    tokio::time::sleep(retry.delay(0)).await;
                }
            }
            Err(e) => {
                if outage.is_none() {
                    outage = Some(Instant::now());
                    if e.is_not_found() {
                        tracing::warn!(
                            secret = %entry.name,
                            "the secret is not found (deleted?); keeping the last value and retrying"
                        );
                    } else {
                        tracing::warn!(
                            secret = %entry.name,
                            error = %e,
                            "cannot watch the secret; keeping the last value and retrying"
                        );
                    }
                }
                tokio::time::sleep(retry.delay(failures)).await;
                failures = failures.saturating_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::Config;

    fn secret(version: &str, value: &str) -> CachedSecret {
        CachedSecret {
            version: version.into(),
            value: Zeroizing::new(value.into()),
            content_type: None,
            expires: None,
        }
    }

    /// A cache whose server cannot be reached (port 1 refuses).
    fn offline() -> SecretCache {
        let config = Config::new(
            "https://127.0.0.1:1",
            "t",
            "c",
            "s",
            "https://default.vault.localhost:1",
        )
        .with_resolve_to([127, 0, 0, 1].into());
        SecretCache::new(Client::new(config).unwrap())
    }

    #[test]
    fn publishing_the_same_version_notifies_nobody() {
        let cache = offline();
        let entry = cache.entry("Db");
        let mut rx = entry.current.subscribe();
        let (_, changed) = entry.publish(secret("a", "1"));
        assert!(changed);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        let (kept, changed) = entry.publish(secret("a", "1"));
        assert!(!changed);
        assert!(!rx.has_changed().unwrap());
        assert_eq!(kept.version, "a");
        let (now, changed) = entry.publish(secret("b", "2"));
        assert!(changed && now.value.as_str() == "2");
    }

    #[tokio::test]
    async fn cached_values_are_served_while_the_server_is_away() {
        let cache = offline();
        cache.entry("db").publish(secret("a", "one"));
        assert_eq!(cache.get("DB").await.unwrap().as_str(), "one");
        // A forced refresh reports the outage; the value stays.
        let err = cache.refresh("db").await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(cache.get("db").await.unwrap().as_str(), "one");
    }

    #[tokio::test]
    async fn an_uncached_secret_needs_the_server() {
        let cache = offline();
        let err = cache.get("db").await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
        assert!(!cache.is_watching("db"));
    }

    #[tokio::test]
    async fn a_failure_of_an_old_version_is_answered_from_memory() {
        let cache = offline();
        cache.entry("db").publish(secret("b", "two"));
        // Version "a" failed, the cache already holds "b": no request needed.
        let newer = cache.on_auth_failure_of("db", "a").await.unwrap().unwrap();
        assert_eq!(newer.value.as_str(), "two");
        // Version "b" failed: the server must be asked (and is away).
        assert!(cache.on_auth_failure_of("db", "B").await.is_err());
    }

    #[tokio::test]
    async fn forgetting_drops_the_value() {
        let cache = offline();
        cache.entry("db").publish(secret("a", "one"));
        cache.forget("DB");
        assert!(cache.get("db").await.is_err());
    }
}

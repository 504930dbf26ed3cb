//! Name resolution that sends the vault host to a fixed address (so that
//! `*.vault.localhost` needs no DNS entry) and everything else to the system
//! resolver.

use std::net::{IpAddr, SocketAddr};

/// Resolves `host` to `addr`, other names through the system.
pub(crate) struct ResolveTo {
    pub(crate) host: String,
    pub(crate) addr: IpAddr,
}

impl ResolveTo {
    fn pinned(&self, name: &str) -> Option<IpAddr> {
        name.eq_ignore_ascii_case(&self.host).then_some(self.addr)
    }
}

impl reqwest::dns::Resolve for ResolveTo {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let pinned = self.pinned(name.as_str());
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector fills in the URL's port.
            let addrs: Vec<SocketAddr> = match pinned {
                Some(ip) => vec![SocketAddr::new(ip, 0)],
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_vault_host_is_pinned() {
        let r = ResolveTo {
            host: "default.vault.localhost".into(),
            addr: [127, 0, 0, 1].into(),
        };
        assert_eq!(
            r.pinned("Default.Vault.Localhost"),
            Some([127, 0, 0, 1].into())
        );
        assert_eq!(r.pinned("other.vault.localhost"), None);
        assert_eq!(r.pinned("localhost"), None);
    }
}

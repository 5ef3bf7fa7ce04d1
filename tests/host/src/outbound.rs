//! `allowed_outbound_hosts`: the grammar Spin accepts and the check it applies to
//! every outgoing request.
//!
//! An entry is `<scheme>://<host>[:<port>]`, each part possibly a wildcard:
//! scheme `*`; host `*`, `*.example.com`, `self` / `self.alt`, a literal name or IP,
//! or a CIDR block such as `127.0.0.0/24`; port `*`, a number, or a range `a..b`
//! (end excluded). Without a port the scheme's well-known port applies. A trailing
//! `/` is tolerated, any other path is refused. Entries may be templates
//! (`"{{ gandalf_url }}"`): Spin checks them with the manifest defaults when the app
//! loads, and resolves them with the real values when a request is made; if the real
//! values give an invalid entry, every request of that component is denied.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Context, Result};

use crate::variables::Template;

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `None` means any scheme.
    scheme: Option<String>,
    host: HostRule,
    port: PortRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    /// Holds the suffix including its leading dot, e.g. `.example.com`.
    Subdomain(String),
    ToSelf,
    Literal(url::Host),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    Any,
    Single(u16),
    /// Start included, end excluded (as Spin's `a..b`).
    Range(u16, u16),
}

fn well_known_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "postgres" => 5432,
        "mysql" => 3306,
        "redis" => 6379,
        "mqtt" => 1883,
        _ => return None,
    })
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self> {
        let text = entry.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            bail!(
                "{text:?} is not an allowed outbound host: use <scheme>://<host>[:<port>] ('*' allowed in each part; '*://*:*' allows everything)"
            );
        };
        // The port is whatever follows the last ':'; IPv6 literals therefore need one.
        let (host, port_and_path) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match port_and_path.split_once('/') {
            Some((_, path)) if !path.is_empty() => bail!("{text:?} has a path"),
            Some((port, _)) => port,
            None => port_and_path,
        };
        let port = parse_port(port, scheme).with_context(|| format!("invalid port in {text:?}"))?;
        let scheme_rule = if scheme == "*" {
            None
        } else if scheme.is_empty() || !scheme.chars().all(char::is_alphabetic) {
            bail!("invalid scheme in {text:?}: only letters or '*' are allowed");
        } else {
            Some(scheme.to_string())
        };
        let host = parse_host(host).with_context(|| format!("invalid host in {text:?}"))?;
        Ok(Self {
            scheme: scheme_rule,
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &url::Host, port: Option<u16>) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let host_ok = match (&self.host, host) {
            (HostRule::Any, _) => true,
            (HostRule::Subdomain(suffix), url::Host::Domain(d)) => d.ends_with(suffix.as_str()),
            (HostRule::Literal(l), h) => l == h,
            (HostRule::Cidr(net, bits), url::Host::Ipv4(ip)) => {
                in_cidr(*net, *bits, IpAddr::V4(*ip))
            }
            (HostRule::Cidr(net, bits), url::Host::Ipv6(ip)) => {
                in_cidr(*net, *bits, IpAddr::V6(*ip))
            }
            _ => false,
        };
        if !host_ok {
            return false;
        }
        match self.port {
            PortRule::Any => true,
            PortRule::Single(p) => port.or_else(|| well_known_port(scheme)) == Some(p),
            PortRule::Range(a, b) => port
                .or_else(|| well_known_port(scheme))
                .is_some_and(|p| a <= p && p < b),
        }
    }

    fn allows_self(&self, schemes: &[&str]) -> bool {
        let scheme_ok = match &self.scheme {
            None => true,
            Some(s) => schemes.contains(&s.as_str()),
        };
        scheme_ok && matches!(self.host, HostRule::Any | HostRule::ToSelf)
    }
}

fn parse_port(port: &str, scheme: &str) -> Result<PortRule> {
    if port.is_empty() {
        return well_known_port(scheme)
            .map(PortRule::Single)
            .ok_or_else(|| anyhow!("no port given and scheme {scheme:?} has no well-known port"));
    }
    if port == "*" {
        return Ok(PortRule::Any);
    }
    if port.starts_with('{') {
        bail!("port lists are not supported");
    }
    if let Some((a, b)) = port.split_once("..") {
        return Ok(PortRule::Range(a.parse()?, b.parse()?));
    }
    Ok(PortRule::Single(port.parse()?))
}

fn parse_host(host: &str) -> Result<HostRule> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostRule::Any);
    }
    if host == "self" || host == "self.alt" {
        return Ok(HostRule::ToSelf);
    }
    if host.starts_with('{') {
        bail!("host lists are not supported");
    }
    if let Some(cidr) = parse_cidr(host) {
        return Ok(cidr);
    }
    let host = host.trim_end_matches('/');
    if host.contains('/') {
        bail!("a host must not include a path");
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            bail!("wildcards are only allowed as the first label");
        }
        return Ok(HostRule::Subdomain(format!(".{domain}")));
    }
    if host.contains('*') {
        bail!("wildcards are only allowed as the first label");
    }
    Ok(HostRule::Literal(url::Host::parse(host)?))
}

/// `a.b.c.d/n` or `ipv6/n`; host bits beyond the prefix are ignored.
fn parse_cidr(text: &str) -> Option<HostRule> {
    let (ip, bits) = text.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some(HostRule::Cidr(ip, bits))
}

fn in_cidr(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The outbound permissions of one component, resolved for this run.
#[derive(Debug, Clone)]
pub enum AllowedHosts {
    List(Vec<AllowedHost>),
    /// The entries could not be resolved with this run's variable values; Spin then
    /// denies every request of the component. Holds the reason, for logs.
    Unusable(String),
}

impl AllowedHosts {
    /// Startup check: literal entries must parse; templates must parse once filled
    /// with the manifest defaults (templates whose variables have no default are
    /// checked only at run time, as Spin does).
    pub fn validate(entries: &[String], defaults: &HashMap<String, String>) -> Result<()> {
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed; use '*://*:*'");
        }
        for entry in entries {
            let template = Template::parse(entry)?;
            if template.is_literal() {
                AllowedHost::parse(entry)?;
            } else if let Some(value) = template.render(defaults) {
                AllowedHost::parse(&value).with_context(|| {
                    format!(
                        "template {entry:?} gives the invalid entry {value:?} with default values"
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Resolves the entries with this run's values; never fails (see `Unusable`).
    pub fn resolve(entries: &[String], values: &HashMap<String, String>) -> Self {
        let mut list = Vec::new();
        for entry in entries {
            let parsed = Template::parse(entry).and_then(|t| {
                let value = t
                    .render(values)
                    .ok_or_else(|| anyhow!("template {entry:?} refers to an unknown variable"))?;
                AllowedHost::parse(&value)
            });
            match parsed {
                Ok(h) => list.push(h),
                Err(e) => return Self::Unusable(format!("{e:#}")),
            }
        }
        Self::List(list)
    }

    /// Whether a request to the absolute `url` may go out. A URL without a scheme is
    /// read as `https://`, as Spin does.
    pub fn allows_url(&self, url: &str) -> bool {
        let Self::List(list) = self else {
            return false;
        };
        let parsed = match url::Url::parse(url) {
            Ok(u) if u.has_host() => u,
            _ => match url::Url::parse(&format!("https://{url}")) {
                Ok(u) => u,
                Err(_) => return false,
            },
        };
        let Some(host) = parsed.host() else {
            return false;
        };
        let host = host.to_owned();
        list.iter()
            .any(|h| h.allows(parsed.scheme(), &host, parsed.port()))
    }

    /// Whether a request to the app itself ("self" / a relative URL) may go out.
    pub fn allows_self(&self) -> bool {
        match self {
            Self::List(list) => list.iter().any(|h| h.allows_self(&["http", "https"])),
            Self::Unusable(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        AllowedHosts::resolve(&entries, &HashMap::new())
    }

    #[test]
    fn grammar() {
        for good in [
            "http://example.com",
            "http://example.com/",
            "https://example.com:8443",
            "http://*.example.com",
            "*://*:*",
            "http://127.0.0.1:*",
            "http://localhost:3001",
            "http://self",
            "*://127.0.0.0/24:80",
            "http://example.com:4000..5000",
            "http://[::1]:8001",
        ] {
            assert!(AllowedHost::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "example.com",
            "example.com:80",
            "http://example.com/a",
            "http://a.*.com",
            "ftp://example.com",
            "*://127.0.0.0/24",
            "http://[::1]",
            "ht-tp://x",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let h = hosts(&[
            "http://example.com:8383",
            "*://spin.dev:443",
            "http://*.wild.org",
        ]);
        assert!(h.allows_url("http://example.com:8383/foo"));
        assert!(!h.allows_url("http://example.com/"));
        assert!(!h.allows_url("https://example.com:8383/"));
        assert!(h.allows_url("https://spin.dev/"));
        assert!(h.allows_url("spin.dev:443"));
        assert!(h.allows_url("http://a.b.wild.org/x"));
        assert!(!h.allows_url("http://wild.org/x"));
        assert!(!h.allows_url("http://google.com/"));
    }

    #[test]
    fn ports_and_ranges() {
        let h = hosts(&["http://127.0.0.1:*"]);
        assert!(h.allows_url("http://127.0.0.1:1/"));
        assert!(h.allows_url("http://127.0.0.1/"));
        assert!(!h.allows_url("http://127.0.0.2:1/"));
        let r = hosts(&["http://localhost:4000..4002"]);
        assert!(r.allows_url("http://localhost:4001/"));
        assert!(!r.allows_url("http://localhost:4002/"));
        let all = hosts(&["*://*:*"]);
        assert!(all.allows_url("https://anything.example:9/"));
        assert!(all.allows_self());
    }

    #[test]
    fn cidr() {
        let h = hosts(&["*://10.1.0.0/16:*"]);
        assert!(h.allows_url("http://10.1.200.3:8080/"));
        assert!(!h.allows_url("http://10.2.0.1:8080/"));
        assert!(!h.allows_url("http://example.com/"));
    }

    #[test]
    fn templates() {
        let entries = vec!["{{ api }}".to_string()];
        let good = HashMap::from([("api".to_string(), "http://127.0.0.1:9000".to_string())]);
        assert!(AllowedHosts::resolve(&entries, &good).allows_url("http://127.0.0.1:9000/x"));
        // An empty value makes the entry invalid: every request is then denied.
        let empty = HashMap::from([("api".to_string(), String::new())]);
        let h = AllowedHosts::resolve(&entries, &empty);
        assert!(matches!(h, AllowedHosts::Unusable(_)));
        assert!(!h.allows_url("http://127.0.0.1:9000/x"));
        // ...and with such a default the app does not even load.
        assert!(AllowedHosts::validate(&entries, &empty).is_err());
        assert!(AllowedHosts::validate(&entries, &HashMap::new()).is_ok());
    }

    #[test]
    fn nothing_declared_denies_everything() {
        let h = hosts(&[]);
        assert!(!h.allows_url("http://127.0.0.1:80/"));
        assert!(!h.allows_self());
    }
}

//! The egress policy: which non-loopback hosts a workload may reach, parsed from the manifest's
//! `allowedHosts`. Owns entry parsing (with errors naming the entry) and matching of DNS names
//! and IP addresses, including the addresses that are denied whatever the policy says
//! (cloud metadata, link-local, real loopback, unspecified). It does not track which IPs a
//! lookup produced; that lives in the per-store context (`ctx.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the manifest's `allowedHosts` permits: deny by default, then a list of entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    target: Target,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// An exact DNS name, lower case, without a trailing dot.
    Name(String),
    /// `*.suffix`: stored as `.suffix` (lower case), matches names with at least one more label.
    Suffix(String),
    Ip(IpAddr),
}

/// An `allowedHosts` entry that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowedHosts[{index}]: expected {expected}, found `{entry}`")]
pub struct PolicyError {
    /// Position of the entry in the list (0-based).
    pub index: usize,
    /// The entry as written.
    pub entry: String,
    /// What was expected instead.
    pub expected: String,
}

const EXPECTED_ENTRY: &str = "a host name (`example.com`), a wildcard (`*.example.com`), an IPv4 \
     address or a bracketed IPv6 address (`[2001:db8::1]`), each with an optional `:port`";

impl EgressPolicy {
    /// A policy that allows nothing beyond the workload's own loopback network.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Parses `allowedHosts` entries: `host`, `host:port`, `*.suffix`, `*.suffix:port`,
    /// IPv4 literals and bracketed IPv6 literals, each with an optional port.
    pub fn parse(entries: &[String]) -> Result<Self, PolicyError> {
        let entries = entries
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                parse_entry(raw).map_err(|expected| PolicyError {
                    index,
                    entry: raw.clone(),
                    expected,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { entries })
    }

    /// Whether `host` (a DNS name, any case) may be reached on `port`. With `port: None` the
    /// question is whether the name may be reached on some port (used before a lookup).
    /// IP literals are judged by [`EgressPolicy::allows_ip`]; `localhost` is never allowed
    /// (it always means the workload's virtual loopback).
    pub fn allows_name(&self, host: &str, port: Option<u16>) -> bool {
        let trimmed = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = trimmed.parse::<IpAddr>() {
            return match port {
                Some(port) => self.allows_ip(ip, port),
                None => {
                    !always_denied(ip)
                        && self
                            .entries
                            .iter()
                            .any(|e| e.target == Target::Ip(ip.to_canonical()))
                }
            };
        }
        let Some(name) = normalize_name(host) else {
            return false;
        };
        if crate::addr::is_loopback_name(&name) {
            return false;
        }
        self.entries.iter().any(|entry| {
            let port_ok = match (entry.port, port) {
                (None, _) | (_, None) => true,
                (Some(want), Some(got)) => want == got,
            };
            port_ok
                && match &entry.target {
                    Target::Name(n) => *n == name,
                    Target::Suffix(suffix) => {
                        name.len() > suffix.len() && name.ends_with(suffix.as_str())
                    }
                    Target::Ip(_) => false,
                }
        })
    }

    /// Whether the IP literal entries allow `ip:port`. Always false for cloud metadata,
    /// link-local, loopback, unspecified, multicast and broadcast addresses.
    pub fn allows_ip(&self, ip: IpAddr, port: u16) -> bool {
        let ip = ip.to_canonical();
        if always_denied(ip) {
            return false;
        }
        self.entries.iter().any(|entry| {
            entry.target == Target::Ip(ip) && entry.port.is_none_or(|want| want == port)
        })
    }

    /// Whether the policy has no entries at all.
    pub fn is_deny_all(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Addresses no policy can open: the workload's own loopback (`127.0.0.1` and `::1` always
/// mean the virtual network), cloud metadata endpoints, link-local ranges, unspecified,
/// multicast and broadcast. The host's other loopback addresses (`127.0.0.2` and up) are not
/// here: an entry naming one exactly allows it, which is how tests reach a real local server.
pub(crate) fn always_denied(ip: IpAddr) -> bool {
    const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4 == std::net::Ipv4Addr::LOCALHOST
                || v4.is_link_local() // includes 169.254.169.254
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6 == METADATA_V6
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Addresses a DNS answer may never lead to: everything always denied, plus the host's
/// whole loopback range (only an exact IP entry can open `127.0.0.2` and up, never a name).
pub(crate) fn denied_for_names(ip: IpAddr) -> bool {
    always_denied(ip) || ip.to_canonical().is_loopback()
}

/// Lower-cases a DNS name and strips one trailing dot; `None` if it is not a valid name.
pub(crate) fn normalize_name(host: &str) -> Option<String> {
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    valid_name(&name).then_some(name)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn parse_entry(raw: &str) -> Result<Entry, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(EXPECTED_ENTRY.to_string());
    }
    if text.contains("://") || text.contains('/') {
        return Err(format!("{EXPECTED_ENTRY}, without a scheme or path"));
    }
    // Bracketed IPv6, optionally with a port.
    if let Some(rest) = text.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err("a closing `]` after the IPv6 address".to_string());
        };
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("an IPv6 address inside `[...]`, not `{addr}`"))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(parse_port(port)?),
                None => return Err("`:port` after `]`".to_string()),
            },
        };
        return ip_entry(IpAddr::V6(ip), port);
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Err(format!(
            "an IPv6 address in brackets (`[{text}]`, or `[{text}]:port` with a port)"
        ));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(parse_port(port)?)),
        None => (text, None),
    };
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return ip_entry(IpAddr::V4(ip), port);
    }
    if host == "*" {
        return Err("a wildcard with a domain suffix, such as `*.example.com`".to_string());
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        let Some(suffix) = normalize_name(suffix) else {
            return Err(format!("a valid domain after `*.`, not `{suffix}`"));
        };
        return Ok(Entry {
            target: Target::Suffix(format!(".{suffix}")),
            port,
        });
    }
    if host.contains('*') {
        return Err("`*` only as the whole first label, as in `*.example.com`".to_string());
    }
    let Some(name) = normalize_name(host) else {
        return Err(EXPECTED_ENTRY.to_string());
    };
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("a valid IPv4 address, not `{host}`"));
    }
    if crate::addr::is_loopback_name(&name) {
        return Err("a non-loopback host: `localhost` is always the workload's own service".into());
    }
    Ok(Entry {
        target: Target::Name(name),
        port,
    })
}

fn ip_entry(ip: IpAddr, port: Option<u16>) -> Result<Entry, String> {
    let ip = ip.to_canonical();
    if always_denied(ip) {
        return Err(format!(
            "an address that can be allowed: `{ip}` is the workload's own loopback, link-local, \
             cloud metadata, unspecified or multicast, which are always denied"
        ));
    }
    Ok(Entry {
        target: Target::Ip(ip),
        port,
    })
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("a port number from 1 to 65535, not `{port}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> EgressPolicy {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        EgressPolicy::parse(&entries).unwrap()
    }

    fn parse_err(entries: &[&str]) -> PolicyError {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        EgressPolicy::parse(&entries).unwrap_err()
    }

    #[test]
    fn good_entries_parse() {
        let p = policy(&[
            "example.com",
            "API.Example.com:443",
            "*.example.org",
            "*.example.net:8443",
            "93.184.216.34",
            "93.184.216.34:80",
            "[2001:db8::1]",
            "[2001:db8::2]:443",
            "example.io.",
        ]);
        assert_eq!(p.entries.len(), 9);
        assert!(!p.is_deny_all());
        assert!(EgressPolicy::deny_all().is_deny_all());
    }

    #[test]
    fn bad_entries_name_the_index_and_expectation() {
        let err = parse_err(&["example.com", "example.com:99999"]);
        assert_eq!(err.index, 1);
        assert_eq!(err.entry, "example.com:99999");
        assert_eq!(
            err.to_string(),
            "allowedHosts[1]: expected a port number from 1 to 65535, not `99999`, found `example.com:99999`"
        );

        let err = parse_err(&["https://example.com"]);
        assert_eq!(err.index, 0);
        assert!(err.expected.contains("without a scheme"), "{err}");

        let err = parse_err(&["a.com", "b.com", "2001:db8::1"]);
        assert_eq!(err.index, 2);
        assert!(err.expected.contains("[2001:db8::1]"), "{err}");

        for (bad, needle) in [
            ("", "a host name"),
            ("*", "wildcard"),
            ("foo.*.com", "`*` only"),
            ("*.", "valid domain"),
            ("exa mple.com", "a host name"),
            ("-bad.com", "a host name"),
            ("example.com:0", "port number"),
            ("example.com:http", "port number"),
            ("[2001:db8::1", "closing `]`"),
            ("[nope]:80", "IPv6 address inside"),
            ("[2001:db8::1]80", "`:port` after"),
            ("127.0.0.1", "always denied"),
            ("169.254.169.254:80", "always denied"),
            ("[fd00:ec2::254]", "always denied"),
            ("[fe80::1]", "always denied"),
            ("[::1]:8080", "always denied"),
            ("0.0.0.0", "always denied"),
            ("localhost", "non-loopback"),
            ("300.1.1.1", "valid IPv4"),
        ] {
            let err = parse_err(&[bad]);
            assert_eq!(err.index, 0);
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let p = policy(&["*.example.com"]);
        assert!(p.allows_name("a.example.com", None));
        assert!(p.allows_name("A.Example.COM", Some(443)));
        assert!(p.allows_name("a.b.example.com", Some(80)));
        assert!(p.allows_name("a.example.com.", None));
        assert!(!p.allows_name("example.com", None));
        assert!(!p.allows_name("badexample.com", None));
        assert!(!p.allows_name("a.example.com.evil.net", None));
    }

    #[test]
    fn exact_names_and_ports() {
        let p = policy(&["api.example.com:443", "db.example.com", "*.cdn.net:8443"]);
        assert!(p.allows_name("api.example.com", Some(443)));
        assert!(p.allows_name("API.example.com", None));
        assert!(!p.allows_name("api.example.com", Some(80)));
        assert!(p.allows_name("db.example.com", Some(5432)));
        assert!(!p.allows_name("x.db.example.com", None));
        assert!(p.allows_name("img.cdn.net", Some(8443)));
        assert!(!p.allows_name("img.cdn.net", Some(443)));
        assert!(!p.allows_name("other.com", None));
        assert!(!p.allows_name("not a name", None));
    }

    #[test]
    fn ip_entries_and_ports() {
        let p = policy(&["93.184.216.34", "10.1.2.3:5432", "[2001:db8::1]:443"]);
        let v4: IpAddr = "93.184.216.34".parse().unwrap();
        assert!(p.allows_ip(v4, 1));
        assert!(p.allows_ip(v4, 65535));
        let db: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(p.allows_ip(db, 5432));
        assert!(!p.allows_ip(db, 5433));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(p.allows_ip(v6, 443));
        assert!(!p.allows_ip(v6, 80));
        // IPv4-mapped IPv6 is the same address.
        let mapped: IpAddr = "::ffff:93.184.216.34".parse().unwrap();
        assert!(p.allows_ip(mapped, 80));
        assert!(!p.allows_ip("1.1.1.1".parse().unwrap(), 80));
        // Names that are IP literals go through the IP rules.
        assert!(p.allows_name("93.184.216.34", Some(80)));
        assert!(p.allows_name("[2001:db8::1]", Some(443)));
        assert!(p.allows_name("10.1.2.3", None));
        assert!(!p.allows_name("10.1.2.4", None));
        // Name entries never allow IPs.
        let names = policy(&["example.com"]);
        assert!(!names.allows_ip(v4, 80));
    }

    #[test]
    fn always_denied_addresses() {
        let p = policy(&["*.example.com", "8.8.8.8"]);
        for ip in [
            "169.254.169.254",
            "169.254.1.1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(always_denied(ip), "{ip}");
            assert!(!p.allows_ip(ip, 80), "{ip}");
        }
        assert!(!always_denied("8.8.8.8".parse().unwrap()));
        // The host's loopback beyond 127.0.0.1 opens only by an exact IP entry, never by name.
        let host_lo: IpAddr = "127.9.9.9".parse().unwrap();
        assert!(!always_denied(host_lo) && denied_for_names(host_lo));
        let p = EgressPolicy::parse(&["127.9.9.9:80".to_string()]).unwrap();
        assert!(p.allows_ip(host_lo, 80) && !p.allows_ip(host_lo, 81));
        assert!(!EgressPolicy::deny_all().allows_ip(host_lo, 80));
        assert!(!always_denied("fec0::1".parse().unwrap()));
        assert!(!p.allows_name("localhost", None));
        assert!(!p.allows_name("svc.localhost", Some(80)));
        assert!(!p.allows_name("127.0.0.1", Some(80)));
        assert!(!EgressPolicy::deny_all().allows_name("example.com", None));
    }
}

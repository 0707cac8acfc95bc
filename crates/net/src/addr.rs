//! Socket addresses: conversions between the WIT address records and `std::net`, and the
//! address rules shared by TCP and UDP (which family a socket accepts, what counts as the
//! virtual loopback, what may be bound). Policy decisions about the real network are not here
//! (see `policy.rs` and `ctx.rs`).

use crate::bindings::ErrorCode;
use crate::bindings::sockets::network::{
    IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

pub(crate) fn to_std(addr: IpSocketAddress) -> SocketAddr {
    match addr {
        IpSocketAddress::Ipv4(Ipv4SocketAddress { address, port }) => {
            let (a, b, c, d) = address;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port))
        }
        IpSocketAddress::Ipv6(Ipv6SocketAddress {
            address,
            port,
            flow_info,
            scope_id,
        }) => {
            let (a, b, c, d, e, f, g, h) = address;
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::new(a, b, c, d, e, f, g, h),
                port,
                flow_info,
                scope_id,
            ))
        }
    }
}

pub(crate) fn from_std(addr: SocketAddr) -> IpSocketAddress {
    match addr {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                address: (a, b, c, d),
                port: v4.port(),
            })
        }
        SocketAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                address: (a, b, c, d, e, f, g, h),
                port: v6.port(),
                flow_info: v6.flowinfo(),
                scope_id: v6.scope_id(),
            })
        }
    }
}

pub(crate) fn ip_from_std(ip: IpAddr) -> IpAddress {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            IpAddress::Ipv4((a, b, c, d))
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            IpAddress::Ipv6((a, b, c, d, e, f, g, h))
        }
    }
}

/// The loopback address of a family: where virtual connections appear to come from.
pub(crate) fn loopback(family: IpAddressFamily) -> IpAddr {
    match family {
        IpAddressFamily::Ipv4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddressFamily::Ipv6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// Whether a name means the workload's virtual loopback: `localhost` and every name under
/// `.localhost` (RFC 6761 reserves them for loopback). `name` is already normalised
/// (lower-case, no trailing dot).
pub(crate) fn is_loopback_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// **The loopback rule**, shared by `wasi:sockets` (name lookup, connect) and `wasi:http`
/// (outgoing requests): whether `host`, as a URL or a guest names it, is the workload's own
/// loopback, reached over the virtual network and never the host's. True for `localhost`, any
/// name under `.localhost`, `127.0.0.1` and `::1` (brackets, case and a trailing dot
/// ignored). The rest of 127.0.0.0/8 is the host's real loopback: egress, denied unless an
/// `allowedHosts` entry names that address.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return is_virtual_loopback(ip);
    }
    crate::policy::normalize_name(bare).is_some_and(|n| is_loopback_name(&n))
}

/// Whether `ip` addresses the workload's virtual loopback: `127.0.0.1` or `::1`, what
/// `localhost` means. The rest of 127.0.0.0/8 is the host's own loopback, which is real
/// egress: denied unless an `allowedHosts` entry names that exact address.
pub(crate) fn is_virtual_loopback(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// WASI's address-family rule: a socket only takes addresses of its own family, and IPv6
/// sockets refuse IPv4-mapped and deprecated IPv4-compatible addresses.
pub(crate) fn check_family(ip: IpAddr, family: IpAddressFamily) -> Result<(), ErrorCode> {
    match (family, ip) {
        (IpAddressFamily::Ipv4, IpAddr::V4(_)) => Ok(()),
        (IpAddressFamily::Ipv6, IpAddr::V6(v6)) => {
            let compatible = matches!(v6.segments(), [0, 0, 0, 0, 0, 0, _, _])
                && !v6.is_unspecified()
                && !v6.is_loopback();
            if compatible || v6.to_ipv4_mapped().is_some() {
                Err(ErrorCode::InvalidArgument)
            } else {
                Ok(())
            }
        }
        _ => Err(ErrorCode::InvalidArgument),
    }
}

/// Multicast and broadcast addresses are never valid socket endpoints.
pub(crate) fn check_unicast(ip: IpAddr) -> Result<(), ErrorCode> {
    let unicast = match ip.to_canonical() {
        IpAddr::V4(v4) => !v4.is_multicast() && !v4.is_broadcast(),
        IpAddr::V6(v6) => !v6.is_multicast(),
    };
    if unicast {
        Ok(())
    } else {
        Err(ErrorCode::InvalidArgument)
    }
}

/// The checks `start-connect` and UDP destinations share: right family, unicast, a real
/// address and a non-zero port.
pub(crate) fn check_remote(addr: SocketAddr, family: IpAddressFamily) -> Result<(), ErrorCode> {
    check_family(addr.ip(), family)?;
    check_unicast(addr.ip())?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(ErrorCode::InvalidArgument);
    }
    Ok(())
}

/// The checks for a local bind address: right family, unicast, and an address of the virtual
/// host (loopback or unspecified); anything else is `address-not-bindable`.
pub(crate) fn check_bind(addr: SocketAddr, family: IpAddressFamily) -> Result<(), ErrorCode> {
    check_family(addr.ip(), family)?;
    check_unicast(addr.ip())?;
    if addr.ip().is_unspecified() || is_virtual_loopback(addr.ip()) {
        Ok(())
    } else {
        Err(ErrorCode::AddressNotBindable)
    }
}

/// Maps an I/O error from the real network to the closest WASI error code.
pub(crate) fn io_error_code(err: &std::io::Error) -> ErrorCode {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
        ErrorKind::ConnectionReset => ErrorCode::ConnectionReset,
        ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => ErrorCode::ConnectionAborted,
        ErrorKind::TimedOut => ErrorCode::Timeout,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable | ErrorKind::NetworkDown => {
            ErrorCode::RemoteUnreachable
        }
        ErrorKind::AddrInUse => ErrorCode::AddressInUse,
        ErrorKind::AddrNotAvailable => ErrorCode::AddressNotBindable,
        ErrorKind::PermissionDenied => ErrorCode::AccessDenied,
        ErrorKind::InvalidInput => ErrorCode::InvalidArgument,
        ErrorKind::NotConnected => ErrorCode::InvalidState,
        ErrorKind::OutOfMemory => ErrorCode::OutOfMemory,
        ErrorKind::WouldBlock | ErrorKind::Interrupted => ErrorCode::WouldBlock,
        ErrorKind::Unsupported => ErrorCode::NotSupported,
        _ => match err.raw_os_error() {
            // EMSGSIZE on Linux.
            Some(90) => ErrorCode::DatagramTooLarge,
            _ => ErrorCode::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["127.0.0.1:80", "[::1]:443", "[2001:db8::1]:1"] {
            let addr: SocketAddr = s.parse().unwrap();
            assert_eq!(to_std(from_std(addr)), addr);
        }
    }

    #[test]
    fn bind_rules() {
        let v4 = IpAddressFamily::Ipv4;
        let v6 = IpAddressFamily::Ipv6;
        let ok = |s: &str, f| check_bind(s.parse().unwrap(), f);
        assert_eq!(ok("127.0.0.1:80", v4), Ok(()));
        assert_eq!(ok("0.0.0.0:0", v4), Ok(()));
        assert_eq!(ok("[::]:80", v6), Ok(()));
        assert_eq!(ok("[::1]:80", v6), Ok(()));
        assert_eq!(ok("10.0.0.1:80", v4), Err(ErrorCode::AddressNotBindable));
        assert_eq!(ok("[::1]:80", v4), Err(ErrorCode::InvalidArgument));
        assert_eq!(
            ok("[::ffff:127.0.0.1]:80", v6),
            Err(ErrorCode::InvalidArgument)
        );
        assert_eq!(ok("224.0.0.1:80", v4), Err(ErrorCode::InvalidArgument));
    }

    #[test]
    fn remote_rules() {
        let v4 = IpAddressFamily::Ipv4;
        let check = |s: &str| check_remote(s.parse().unwrap(), v4);
        assert_eq!(check("127.0.0.1:80"), Ok(()));
        assert_eq!(check("127.0.0.1:0"), Err(ErrorCode::InvalidArgument));
        assert_eq!(check("0.0.0.0:80"), Err(ErrorCode::InvalidArgument));
        assert_eq!(check("255.255.255.255:80"), Err(ErrorCode::InvalidArgument));
    }

    #[test]
    fn the_loopback_rule() {
        for yes in [
            "localhost",
            "LocalHost.",
            "app.localhost",
            "127.0.0.1",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(yes), "{yes}");
        }
        for no in [
            "127.0.0.2",
            "example.com",
            "localhost.example.com",
            "0.0.0.0",
            "[::2]",
            "",
        ] {
            assert!(!is_loopback_host(no), "{no}");
        }
    }
}

//! The address a client names itself by (its client id, and its message
//! ids) when the configuration sets none.
//!
//! First choice: the address the OS would send from to an outside address,
//! IPv4 then IPv6 (the interface of the default route; nothing is sent).
//! A host with no default route (a segmented or air-gapped network) has no
//! such address, so the next choice is made as Java's `NetworkUtil
//! .getLocalInetAddress` makes it among the addresses of the interfaces that
//! are up, leaving out loopback, point-to-point links and bridges: IPv4
//! before IPv6, a public address before a private one. (Where Java takes
//! the last private IPv4 address, this takes the first, and it counts shared
//! 100.64/10 addresses as private too.) Last comes 127.0.0.1, with
//! a warning: clients on two hosts with one instance name would then share
//! a client id, and each would take every queue.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The host's address for its client id (see the module documentation).
pub(crate) fn local_ip() -> IpAddr {
    let outward = [
        (
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 9)),
        ),
        (
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9)),
        ),
    ];
    let routed = outward
        .into_iter()
        .filter_map(|(bind, to)| source_address(bind, to))
        .find(|ip| usable(*ip));
    if let Some(ip) = routed.or_else(|| choose(interface_addresses())) {
        return ip;
    }
    tracing::warn!(
        "no usable network address found; the client id says 127.0.0.1 (set ClientConfig::client_ip)"
    );
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// The source address of a datagram from `bind` to `to`, as the OS routes
/// it (a UDP connect sends nothing).
fn source_address(bind: SocketAddr, to: SocketAddr) -> Option<IpAddr> {
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(to).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// The addresses of the interfaces that are up, leaving out point-to-point
/// links and bridges (as Java does).
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    interfaces
        .into_iter()
        .filter(|nif| nif.is_oper_up() && !nif.is_p2p() && !is_bridge(&nif.name))
        .map(|nif| nif.ip())
        .collect()
}

/// Whether `name` is a Linux bridge (e.g. a container host's `docker0`),
/// whose address other hosts cannot reach.
fn is_bridge(name: &str) -> bool {
    cfg!(target_os = "linux")
        && std::path::Path::new("/sys/class/net")
            .join(name)
            .join("bridge")
            .exists()
}

/// The choice among `addresses`: IPv4 before IPv6, a public address before
/// a private one, the first of its kind. Loopback, unspecified and
/// link-local addresses are never chosen.
fn choose(addresses: impl IntoIterator<Item = IpAddr>) -> Option<IpAddr> {
    addresses
        .into_iter()
        .filter(|ip| usable(*ip))
        .min_by_key(|ip| (ip.is_ipv6(), is_private(*ip)))
}

/// Whether another host could reach this address at all.
fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unspecified() && !v6.is_unicast_link_local(),
    }
}

/// Private (site-local) addresses: RFC 1918 and shared (CGNAT) IPv4, unique
/// local IPv6.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => v6.is_unique_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    fn chosen(list: &[&str]) -> Option<String> {
        choose(ips(list)).map(|ip| ip.to_string())
    }

    #[test]
    fn public_ipv4_first_then_private_then_ipv6() {
        assert_eq!(
            chosen(&["127.0.0.1", "10.1.2.3", "203.0.113.9", "fd00::5"]).as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(
            chosen(&["fd00::5", "10.1.2.3", "192.168.0.4"]).as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(
            chosen(&["::1", "fd00::5", "2001:db8::7"]).as_deref(),
            Some("2001:db8::7")
        );
        assert_eq!(chosen(&["::1", "fd00::5"]).as_deref(), Some("fd00::5"));
        assert_eq!(
            chosen(&["100.64.0.9", "198.51.100.1"]).as_deref(),
            Some("198.51.100.1")
        );
    }

    #[test]
    fn loopback_and_link_local_addresses_are_never_chosen() {
        assert_eq!(
            chosen(&["127.0.0.1", "::1", "169.254.3.4", "fe80::1"]),
            None
        );
        assert_eq!(chosen(&[]), None);
    }
}

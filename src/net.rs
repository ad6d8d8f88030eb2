//! The SSRF floor: addresses a sandboxed plugin may never reach, whichever
//! way it spells them (sockets under `network`, and brokered HTTP egress
//! unless its policy explicitly allows private ranges). Runtime neutral.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is in a private or special-purpose range: loopback,
/// unspecified, "this network" (0.0.0.0/8), RFC 1918, carrier-grade NAT
/// (100.64.0.0/10), link-local (169.254.0.0/16, with the cloud metadata
/// service, and fe80::/10), IETF protocol assignments (192.0.0.0/24),
/// benchmarking (198.18.0.0/15), multicast (224.0.0.0/4, ff00::/8),
/// reserved and broadcast (240.0.0.0/4), unique-local (fc00::/7),
/// site-local (fec0::/10), NAT64 local-use (64:ff9b:1::/48), and the IPv6
/// forms that carry an IPv4 address in one of those ranges: v4-mapped
/// (::ffff:a.b.c.d), v4-compatible (::a.b.c.d, deprecated: all of it),
/// NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
pub fn is_blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                   // 0.0.0.0/8, "this network"
        || a == 10                           // RFC 1918
        || a == 127                          // loopback
        || (a == 100 && (b & 0xc0) == 64)    // 100.64.0.0/10, carrier-grade NAT
        || (a == 169 && b == 254)            // link-local, metadata service
        || (a == 172 && (b & 0xf0) == 16)    // RFC 1918
        || (a == 192 && b == 0 && c == 0)    // 192.0.0.0/24, IETF protocol assignments
        || (a == 192 && b == 168)            // RFC 1918
        || (a == 198 && (b & 0xfe) == 18)    // 198.18.0.0/15, benchmarking
        || a >= 224                          // multicast 224/4, reserved 240/4, broadcast
}

fn blocked_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| blocked_v4(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8));
    if s[..5] == [0; 5] && (s[5] == 0xffff) {
        return embedded(s[6], s[7]); // v4-mapped
    }
    if s[..6] == [0; 6] {
        return true; // ::, ::1 and the deprecated v4-compatible ::a.b.c.d
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return embedded(s[6], s[7]); // NAT64 well-known prefix
    }
    if s[0] == 0x2002 {
        return embedded(s[1], s[2]); // 6to4
    }
    (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // NAT64 local-use 64:ff9b:1::/48
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local
        || (s[0] & 0xfe00) == 0xfc00 // unique-local
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrf_floor_table() {
        let blocked = [
            "127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.0.0.1", "172.16.5.4", "172.31.255.255",
            "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.255", "198.18.0.1", "198.19.255.255",
            "192.0.0.8", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
            "::", "::1", "::127.0.0.1", "::8.8.8.8", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254",
            "fe80::1", "fec0::1", "feff::1", "fc00::1", "fd12::1", "ff02::1", "ff0e::1",
            "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b:1::1", "64:ff9b:1:ffff::8.8.8.8",
            "2002:7f00:1::1", "2002:a9fe:a9fe::1",
        ];
        for ip in blocked {
            assert!(is_blocked_ip(ip.parse().unwrap()), "{ip} should be blocked");
        }
        let open = [
            "93.184.216.34", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.15.0.1", "172.32.0.1",
            "198.17.255.255", "198.20.0.1", "192.0.2.1", "223.255.255.255", "169.253.0.1",
            "2606:4700::1111", "2001:4860:4860::8888", "64:ff9b::808:808", "::ffff:8.8.8.8", "2002:808:808::1",
            "64:ff9a::1", "fbff::1",
        ];
        for ip in open {
            assert!(!is_blocked_ip(ip.parse().unwrap()), "{ip} should be reachable");
        }
    }
}

//! `net_connect` events from connect and datagram-send records, and whether
//! a destination is a peer on another host.

use std::net::IpAddr;

use proctor_common::{
    CONNECT_ORIGIN_LSM, CONNECT_ORIGIN_LSM_SEND, CONNECT_ORIGIN_SENDMSG,
    CONNECT_ORIGIN_SOCKET_HOOK, CONNECT_ORIGIN_SYSCALL,
};

use crate::{event::NetInfo, kernel::decode::ConnectRecord};

/// Whether a connect destination can be a peer on another host. Loopback
/// never leaves the host, and neither does the unspecified address
/// (`0.0.0.0`, `::`): the kernel routes a connect to it to the local host,
/// and glibc's getaddrinfo "connects" a UDP socket to each answer to sort
/// them (RFC 6724), which for a server's `AI_PASSIVE` lookup means a
/// datagram connect to `[::]:port` and `0.0.0.0:port` that sends nothing:
/// sshd does that for its own listening port at start-up. IPv4-mapped
/// IPv6 forms count as their IPv4 address.
pub fn is_remote_peer(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    !(ip.is_unspecified() || ip.is_loopback())
}

fn protocol_name(r: &ConnectRecord) -> &'static str {
    if r.family == libc::AF_UNIX as u16 {
        return match r.sock_type as i32 {
            libc::SOCK_STREAM => "stream",
            libc::SOCK_DGRAM => "dgram",
            libc::SOCK_SEQPACKET => "seqpacket",
            _ => "other",
        };
    }
    match r.protocol as i32 {
        libc::IPPROTO_TCP => "tcp",
        libc::IPPROTO_UDP => "udp",
        libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6 => "icmp",
        libc::IPPROTO_RAW => "raw",
        _ => "other",
    }
}

fn result_name(result: i32) -> &'static str {
    match -result {
        0 => "success",
        libc::EINPROGRESS => "in_progress",
        libc::ECONNREFUSED => "refused",
        libc::ETIMEDOUT => "timed_out",
        libc::ENETUNREACH | libc::EHOSTUNREACH => "unreachable",
        libc::EPERM | libc::EACCES => "denied",
        _ => "error",
    }
}

/// `result` of a connect the agent's sweep found parked without a handshake.
pub const FAILED_BEFORE_HANDSHAKE: &str = "failed_before_handshake";

pub fn net_info(r: &ConnectRecord) -> NetInfo {
    NetInfo {
        family: match r.family as i32 {
            libc::AF_INET => "inet",
            libc::AF_INET6 => "inet6",
            _ => "unix",
        },
        protocol: protocol_name(r),
        dst_ip: r.ip.map(|ip| ip.to_string()),
        dst_port: r.ip.map(|_| r.port),
        dst_path: r.unix_path.clone(),
        result: if r.before_handshake {
            FAILED_BEFORE_HANDSHAKE
        } else {
            result_name(r.result)
        },
        errno: (r.result < 0).then_some(-r.result),
        async_result: r.deferred,
        operation: match r.origin {
            CONNECT_ORIGIN_SENDMSG | CONNECT_ORIGIN_LSM_SEND => "sendmsg",
            _ => "connect",
        },
        observed_by: match r.origin {
            CONNECT_ORIGIN_SYSCALL => "syscall",
            CONNECT_ORIGIN_LSM | CONNECT_ORIGIN_LSM_SEND => "lsm",
            CONNECT_ORIGIN_SOCKET_HOOK | CONNECT_ORIGIN_SENDMSG => "socket_hook",
            _ => "other",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(origin: u32, protocol: i32) -> ConnectRecord {
        ConnectRecord {
            ktime_ns: 0,
            pid: 1,
            tgid: 1,
            uid: 0,
            cgroup_id: 0,
            result: 0,
            family: libc::AF_INET as u16,
            port: 53,
            protocol: protocol as u16,
            sock_type: libc::SOCK_DGRAM as u16,
            deferred: false,
            ip: Some(std::net::Ipv4Addr::new(198, 18, 0, 1).into()),
            unix_path: None,
            origin,
            before_handshake: false,
        }
    }

    #[test]
    fn datagrams_and_hook_connects_say_how_they_were_seen() {
        let udp = net_info(&record(CONNECT_ORIGIN_SENDMSG, libc::IPPROTO_UDP));
        assert_eq!(
            (udp.protocol, udp.operation, udp.observed_by),
            ("udp", "sendmsg", "socket_hook")
        );
        let hooked = net_info(&record(
            proctor_common::CONNECT_ORIGIN_SOCKET_HOOK,
            libc::IPPROTO_TCP,
        ));
        assert_eq!(
            (hooked.operation, hooked.observed_by),
            ("connect", "socket_hook")
        );
        let sys = net_info(&record(CONNECT_ORIGIN_SYSCALL, libc::IPPROTO_TCP));
        assert_eq!((sys.operation, sys.observed_by), ("connect", "syscall"));
    }

    #[test]
    fn swept_and_unix_lsm_connects_say_so() {
        let mut swept = record(CONNECT_ORIGIN_SOCKET_HOOK, libc::IPPROTO_TCP);
        swept.before_handshake = true;
        let info = net_info(&swept);
        assert_eq!(
            (info.result, info.errno, info.observed_by),
            (FAILED_BEFORE_HANDSHAKE, None, "socket_hook")
        );
        let mut unix = record(CONNECT_ORIGIN_LSM_SEND, 0);
        unix.family = libc::AF_UNIX as u16;
        unix.unix_path = Some("/run/x.sock".into());
        let info = net_info(&unix);
        assert_eq!(
            (info.family, info.protocol, info.operation, info.observed_by),
            ("unix", "dgram", "sendmsg", "lsm")
        );
        let stream = net_info(&record(CONNECT_ORIGIN_LSM, 0));
        assert_eq!((stream.operation, stream.observed_by), ("connect", "lsm"));
    }

    #[test]
    fn unspecified_and_loopback_addresses_are_not_remote_peers() {
        for local in [
            "0.0.0.0",
            "::",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.0",
        ] {
            assert!(!is_remote_peer(local.parse().unwrap()), "{local}");
        }
        for remote in [
            "203.0.113.7",
            "10.0.0.1",
            "2001:db8::1",
            "::ffff:203.0.113.7",
        ] {
            assert!(is_remote_peer(remote.parse().unwrap()), "{remote}");
        }
    }

    #[test]
    fn results_are_named() {
        assert_eq!(result_name(0), "success");
        assert_eq!(result_name(-libc::ECONNREFUSED), "refused");
        assert_eq!(result_name(-libc::EPERM), "denied");
        assert_eq!(result_name(-9999), "error");
    }
}

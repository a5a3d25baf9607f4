//! `net_connect` events from connect and datagram-send records.

use proctor_common::{CONNECT_ORIGIN_SENDMSG, CONNECT_ORIGIN_SYSCALL};

use crate::{event::NetInfo, kernel::decode::ConnectRecord};

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
        result: result_name(r.result),
        errno: (r.result < 0).then_some(-r.result),
        async_result: r.deferred,
        operation: if r.origin == CONNECT_ORIGIN_SENDMSG {
            "sendmsg"
        } else {
            "connect"
        },
        observed_by: if r.origin == CONNECT_ORIGIN_SYSCALL {
            "syscall"
        } else {
            "socket_hook"
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
    fn results_are_named() {
        assert_eq!(result_name(0), "success");
        assert_eq!(result_name(-libc::ECONNREFUSED), "refused");
        assert_eq!(result_name(-libc::EPERM), "denied");
        assert_eq!(result_name(-9999), "error");
    }
}

//! `net_connect` events from connect records.

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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_named() {
        assert_eq!(result_name(0), "success");
        assert_eq!(result_name(-libc::ECONNREFUSED), "refused");
        assert_eq!(result_name(-libc::EPERM), "denied");
        assert_eq!(result_name(-9999), "error");
    }
}

//! The agent's HTTP endpoint seen from outside: a plain GET over loopback and
//! samples read from its Prometheus/OpenMetrics text.

use std::io::{Read, Write};

/// A minimal HTTP GET over loopback: (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The value of one sample in Prometheus/OpenMetrics text, if present.
pub fn sample_opt(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        (series == name_and_labels).then(|| value.parse().ok())?
    })
}

/// The value of one sample; 0 when absent.
pub fn sample(text: &str, name_and_labels: &str) -> f64 {
    sample_opt(text, name_and_labels).unwrap_or(0.0)
}

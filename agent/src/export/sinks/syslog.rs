//! Syslog over UDP (RFC 5426): one message per datagram.
//!
//! UDP has no acknowledgement: a datagram the receiver never got is not
//! known to be lost. The only signal is the ICMP "port unreachable" a
//! stopped receiver's host answers with, reported on a later send
//! (ECONNREFUSED); from then on events wait in the queue and spool as for
//! any unreachable sink. Use `transport: tcp` or `tls` where loss matters.
//! The message formats (RFC 5424 header, structured data, CEF or JSON) are
//! in [`super::encode`].

use anyhow::{Context, Result};
use tokio::net::UdpSocket;

use super::{
    config::SinkConfig,
    spool::Record,
    worker::{Destination, Failure},
};

/// Larger messages are cut to this (RFC 5426 lets receivers truncate; the
/// IPv4 UDP payload limit is 65507).
const MAX_DATAGRAM: usize = 65000;

pub struct Udp {
    host: String,
    port: u16,
    socket: Option<UdpSocket>,
}

impl Udp {
    pub fn new(cfg: &SinkConfig) -> Result<Self> {
        let (host, port) = cfg.host_port()?;
        Ok(Self {
            host,
            port,
            socket: None,
        })
    }

    async fn connect(&self) -> Result<UdpSocket> {
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("cannot resolve {}", self.host))?
            .next()
            .with_context(|| format!("{} has no address", self.host))?;
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(local).await?;
        s.connect(addr).await?;
        Ok(s)
    }
}

impl Destination for Udp {
    fn max_batch(&self) -> usize {
        256
    }

    async fn send(&mut self, batch: &[Record]) -> Result<(), Failure> {
        if self.socket.is_none() {
            self.socket = Some(self.connect().await.map_err(Failure::none)?);
        }
        let s = self.socket.as_ref().expect("connected above");
        for (i, r) in batch.iter().enumerate() {
            let n = r.bytes.len().min(MAX_DATAGRAM);
            if let Err(e) = s.send(&r.bytes[..n]).await {
                return Err(Failure {
                    delivered: i,
                    error: anyhow::Error::new(e)
                        .context(format!("send to {}:{}", self.host, self.port)),
                    rejected: false,
                });
            }
        }
        Ok(())
    }
}

//! Syslog over TCP (RFC 6587 octet counting) and over TLS (RFC 5425 framing,
//! the same octet counting), with delivery confirmed by the peer's TCP ACKs.
//!
//! A successful write() only means the bytes are in our kernel's send
//! buffer; if the receiver dies they are gone. So a record counts as
//! delivered once the peer's TCP has acknowledged every byte up to its end
//! (`tcpi_bytes_acked` of TCP_INFO, compared with the bytes this connection
//! wrote, TLS records included). On a connection error, sending resumes at
//! the first record not yet acknowledged, on a new connection.
//!
//! What remains: bytes the receiver's kernel acknowledged but the receiver
//! process never read (it stopped with data in its socket buffer). Syslog
//! over TCP has no application-level acknowledgement, so no sender can close
//! that window; docs/configuration.md#sinks describes what rsyslog does.

use std::{
    io,
    os::fd::AsRawFd,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use anyhow::{anyhow, Context as _, Result};
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{client::TlsStream, TlsConnector};

use super::{
    config::{client_tls, SinkConfig, Transport},
    spool::Record,
    worker::{Destination, Failure},
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the peer may take to acknowledge a batch before the connection
/// is given up and the batch sent again on a new one.
const ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// A TCP stream that counts the bytes written to it.
pub struct Counted {
    inner: TcpStream,
    written: u64,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written += n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

enum Conn {
    Plain(Counted),
    Tls(Box<TlsStream<Counted>>),
}

impl Conn {
    fn counted(&self) -> &Counted {
        match self {
            Conn::Plain(c) => c,
            Conn::Tls(t) => t.get_ref().0,
        }
    }
}

/// The parts of TCP_INFO that matter here.
struct TcpState {
    state: u8,
    bytes_acked: u64,
}

fn tcp_state(s: &TcpStream) -> io::Result<TcpState> {
    // SAFETY: tcp_info is plain old data; the kernel fills at most `len` bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpState {
        state: info.tcpi_state,
        bytes_acked: info.tcpi_bytes_acked,
    })
}

const TCP_ESTABLISHED: u8 = 1;

pub struct Stream {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: Option<Conn>,
}

impl Stream {
    pub fn new(cfg: &SinkConfig) -> Result<Self> {
        let (host, port) = cfg.host_port()?;
        let tls = if cfg.transport == Some(Transport::Tls) {
            let name = cfg
                .tls
                .as_ref()
                .and_then(|t| t.server_name.clone())
                .unwrap_or_else(|| host.clone());
            let server = ServerName::try_from(name.clone())
                .with_context(|| format!("tls.server_name {name:?} is not a DNS name or IP"))?;
            Some((TlsConnector::from(client_tls(cfg.tls.as_ref())?), server))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            tls,
            conn: None,
        })
    }

    async fn connect(&self) -> Result<Conn> {
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| anyhow!("connect to {}:{} timed out", self.host, self.port))?
        .with_context(|| format!("connect to {}:{}", self.host, self.port))?;
        tcp.set_nodelay(true)?;
        let counted = Counted {
            inner: tcp,
            written: 0,
        };
        Ok(match &self.tls {
            None => Conn::Plain(counted),
            Some((connector, name)) => Conn::Tls(Box::new(
                tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), counted))
                    .await
                    .map_err(|_| {
                        anyhow!("TLS handshake with {}:{} timed out", self.host, self.port)
                    })?
                    .with_context(|| format!("TLS handshake with {}:{}", self.host, self.port))?,
            )),
        })
    }

    /// Writes the batch, noting in `ends` the connection offset at which
    /// each record ends (as far as it got when writing fails).
    async fn write(conn: &mut Conn, batch: &[Record], ends: &mut Vec<u64>) -> io::Result<()> {
        match conn {
            Conn::Plain(c) => {
                let mut buf = Vec::new();
                let mut at = c.written;
                for r in batch {
                    let before = buf.len();
                    buf.extend_from_slice(format!("{} ", r.bytes.len()).as_bytes());
                    buf.extend_from_slice(&r.bytes);
                    at += (buf.len() - before) as u64;
                    ends.push(at);
                }
                c.write_all(&buf).await
            }
            Conn::Tls(t) => {
                for r in batch {
                    t.write_all(format!("{} ", r.bytes.len()).as_bytes())
                        .await?;
                    t.write_all(&r.bytes).await?;
                    // Each record's ciphertext reaches the socket before the
                    // next one, so its end offset is known.
                    t.flush().await?;
                    ends.push(t.get_ref().0.written);
                }
                Ok(())
            }
        }
    }

    /// Waits until the peer acknowledged `end`; on failure, how far it got.
    async fn wait_acked(conn: &Conn, end: u64) -> Result<(), (u64, anyhow::Error)> {
        let tcp = &conn.counted().inner;
        let started = tokio::time::Instant::now();
        let mut acked = 0;
        let mut pause = Duration::from_micros(200);
        loop {
            let st = match tcp_state(tcp) {
                Ok(s) => s,
                Err(e) => return Err((acked, e.into())),
            };
            acked = acked.max(st.bytes_acked);
            if acked >= end {
                return Ok(());
            }
            if st.state != TCP_ESTABLISHED {
                let err = tcp.take_error().ok().flatten();
                return Err((
                    acked,
                    anyhow!(
                        "connection closed by the receiver before it acknowledged everything{}",
                        err.map(|e| format!(" ({e})")).unwrap_or_default()
                    ),
                ));
            }
            if started.elapsed() > ACK_TIMEOUT {
                return Err((
                    acked,
                    anyhow!("no TCP acknowledgement within {ACK_TIMEOUT:?}"),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Destination for Stream {
    fn max_batch(&self) -> usize {
        256
    }

    async fn send(&mut self, batch: &[Record]) -> Result<(), Failure> {
        // A connection the receiver closed (FIN) is replaced before writing.
        if let Some(c) = &self.conn {
            if tcp_state(&c.counted().inner).map_or(true, |s| s.state != TCP_ESTABLISHED) {
                self.conn = None;
            }
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect().await.map_err(Failure::none)?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut ends = Vec::with_capacity(batch.len());
        let (acked, error) = match Self::write(conn, batch, &mut ends).await {
            Ok(()) => match Self::wait_acked(conn, ends.last().copied().unwrap_or(0)).await {
                Ok(()) => return Ok(()),
                Err(failed) => failed,
            },
            Err(e) => (0, e.into()),
        };
        // bytes_acked survives the reset: it still says how far the peer got.
        let acked = tcp_state(&conn.counted().inner).map_or(acked, |s| s.bytes_acked.max(acked));
        self.conn = None;
        Err(Failure {
            delivered: ends.iter().take_while(|&&e| e <= acked).count(),
            error,
            rejected: false,
        })
    }
}

//! The one HTTP(S) stand-in for the services the agent calls (Splunk HEC, an
//! OTLP collector, the kubelet and the API server): a loopback server that
//! records every request and answers what the test's handler says.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use super::tls::Certs;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    /// The body after Content-Encoding was undone.
    pub body: Vec<u8>,
}

/// The answer to a request: status code and a JSON (or plain) body.
pub type Handler = Arc<dyn Fn(&Request) -> (u16, String) + Send + Sync>;

pub struct StandIn {
    pub addr: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl StandIn {
    /// Listens on 127.0.0.1, over TLS with `tls`'s server certificate when given.
    pub fn start(tls: Option<&Certs>, handler: Handler) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let server = tls.map(Certs::server_config);
        let (r2, s2) = (requests.clone(), stop.clone());
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                let (r3, h, server) = (r2.clone(), handler.clone(), server.clone());
                std::thread::spawn(move || match server {
                    Some(cfg) => {
                        let tls = rustls::ServerConnection::new(cfg).unwrap();
                        serve_http(rustls::StreamOwned::new(tls, conn), &r3, &h)
                    }
                    None => serve_http(conn, &r3, &h),
                });
            }
        });
        StandIn {
            addr,
            requests,
            stop,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    /// Every request so far, answered or being answered.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// HTTP/1.1 with keep-alive and Content-Length bodies (what the agent sends).
fn serve_http(stream: impl Read + Write, log: &Mutex<Vec<Request>>, handler: &Handler) {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut it = line.split_whitespace();
        let (method, path) = (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        assert!(
            !headers.contains_key("transfer-encoding"),
            "the stand-in expects Content-Length bodies"
        );
        let len: usize = headers
            .get("content-length")
            .map(|l| l.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("Content-Encoding: gzip but the body is not gzip");
            body = out;
        }
        let req = Request {
            method,
            path,
            headers,
            body,
        };
        let (code, answer) = handler(&req);
        // Logged before the answer leaves: whoever got an answer finds its
        // request in the log.
        log.lock().unwrap().push(req);
        let w = r.get_mut();
        write!(
            w,
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        w.flush().unwrap();
    }
}

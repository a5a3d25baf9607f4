//! The workloads every configuration runs: each returns how many operations
//! it did and how long they took.

use std::{
    fmt::Write as _,
    io::Read,
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use anyhow::{bail, Context, Result};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Workload {
    UnwatchedOpens,
    CachedReads,
    UdpSends,
    IoUringOpens,
    SecretReads,
    ExecStorm,
    ConnectStorm,
    CBuild,
}

impl Workload {
    /// The UDP and io_uring rows run before the secret reads: the bench
    /// process holds no secret then, so they measure the hooks' cost on an
    /// unwatched process.
    pub const ALL: [Workload; 8] = [
        Workload::UnwatchedOpens,
        Workload::CachedReads,
        Workload::UdpSends,
        Workload::IoUringOpens,
        Workload::SecretReads,
        Workload::ExecStorm,
        Workload::ConnectStorm,
        Workload::CBuild,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::UnwatchedOpens => "unwatched open/close",
            Workload::CachedReads => "unwatched cached 4 KiB reads",
            Workload::UdpSends => "loopback UDP sendto",
            Workload::IoUringOpens => "io_uring open/close",
            Workload::SecretReads => "watched secret reads",
            Workload::ExecStorm => "fork+exec storm",
            Workload::ConnectStorm => "loopback connects",
            Workload::CBuild => "C build (make -j2)",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Workload::UnwatchedOpens => "opens/s",
            Workload::CachedReads => "preads/s",
            Workload::UdpSends => "datagrams/s",
            Workload::IoUringOpens => "opens/s",
            Workload::SecretReads => "reads/s",
            Workload::ExecStorm => "execs/s",
            Workload::ConnectStorm => "connects/s",
            Workload::CBuild => "files/s",
        }
    }
}

pub struct Sizes {
    pub opens: usize,
    pub preads: usize,
    pub reads: usize,
    pub execs: usize,
    pub exec_threads: usize,
    pub connects: usize,
    pub datagrams: usize,
    pub uring_opens: usize,
    pub c_files: usize,
}

impl Sizes {
    pub fn new(smoke: bool) -> Self {
        if smoke {
            Sizes {
                opens: 5_000,
                preads: 10_000,
                reads: 1_000,
                execs: 40,
                exec_threads: 2,
                connects: 200,
                datagrams: 2_000,
                uring_opens: 2_000,
                c_files: 2,
            }
        } else {
            Sizes {
                // Each workload runs for a few seconds: shorter ones put the
                // machine's own noise (±10% between runs) in the ratios.
                opens: 1_000_000,
                preads: 1_000_000,
                reads: 100_000,
                execs: 6_000,
                exec_threads: 4,
                connects: 30_000,
                datagrams: 500_000,
                uring_opens: 300_000,
                c_files: 36,
            }
        }
    }

    pub fn describe(&self, w: Workload) -> String {
        match w {
            Workload::UnwatchedOpens => format!(
                "{} open+close of one unwatched file, one thread",
                self.opens
            ),
            Workload::CachedReads => format!(
                "{} `pread` of 4 KiB from a page-cached, unwatched {} KiB file (offsets cycling), one thread, file opened once",
                self.preads,
                CACHED_FILE_BYTES / 1024
            ),
            Workload::SecretReads => format!(
                "{} open+read+close cycling over 5 watched secret files, one thread",
                self.reads
            ),
            Workload::ExecStorm => format!(
                "{} fork+exec of `/bin/true` from {} threads",
                self.execs, self.exec_threads
            ),
            Workload::ConnectStorm => format!(
                "{} TCP connects to a loopback listener, one thread",
                self.connects
            ),
            Workload::UdpSends => format!(
                "{} `sendto` of a 64-byte datagram to a loopback UDP socket (explicit address on an unconnected socket, so the cgroup sendmsg hook runs on each; the sink does not read: the send path is what is measured), one thread",
                self.datagrams
            ),
            Workload::IoUringOpens => format!(
                "{} IORING_OP_OPENAT + IORING_OP_CLOSE of one unwatched file through one io_uring, each waited for, one thread",
                self.uring_opens
            ),
            Workload::CBuild => format!(
                "`make -j2` of a generated C project ({} files, gcc -O2), after `make clean`",
                self.c_files
            ),
        }
    }
}

/// What the workloads act on, made once per bench run.
/// Size of the file the cached-read workload reads from: 16 pages.
const CACHED_FILE_BYTES: usize = 64 * 1024;

pub struct Env {
    pub plain: PathBuf,
    /// Read by the cached-read workload; warmed into the page cache at creation.
    pub cached: PathBuf,
    pub secrets: Vec<PathBuf>,
    pub marker: String,
    pub listener: SocketAddr,
    pub connect_failures: AtomicU64,
    /// Bound for as long as the bench runs: the UDP row's destination.
    udp_sink: UdpSocket,
    pub c_project: PathBuf,
}

impl Env {
    pub fn new(dir: &Path, secrets: &[PathBuf], marker: &str, c_files: usize) -> Result<Env> {
        let plain = dir.join("plain.txt");
        std::fs::write(&plain, "not a secret\n")?;
        let cached = dir.join("cached.bin");
        std::fs::write(&cached, vec![0x5a; CACHED_FILE_BYTES])?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        widen_backlog(&listener);
        let addr = listener.local_addr()?;
        std::thread::spawn(move || {
            for c in listener.incoming() {
                drop(c);
            }
        });
        let udp_sink = UdpSocket::bind("127.0.0.1:0")?;
        let c_project = dir.join("cproject");
        write_c_project(&c_project, c_files)?;
        Ok(Env {
            plain,
            cached,
            secrets: secrets.to_vec(),
            marker: marker.to_string(),
            listener: addr,
            connect_failures: AtomicU64::new(0),
            udp_sink,
            c_project,
        })
    }

    /// Runs `w` on a thread created for it; returns (operations, seconds).
    /// A monitor may set a task up only when the task is created: the
    /// kernel gives a task its audit context at fork, and only once
    /// auditing has ever been enabled, so on a machine booted with auditing
    /// off, auditd's rules never applied to a workload run on the bench's
    /// main thread (started before auditd): it recorded the exec storm's
    /// children and nothing of the in-process workloads.
    pub fn run(&self, w: Workload, sizes: &Sizes) -> Result<(u64, f64)> {
        std::thread::scope(|s| {
            s.spawn(|| self.run_here(w, sizes))
                .join()
                .map_err(|_| anyhow::anyhow!("the {} workload's thread panicked", w.name()))?
        })
    }

    fn run_here(&self, w: Workload, sizes: &Sizes) -> Result<(u64, f64)> {
        match w {
            Workload::UnwatchedOpens => {
                let t = Instant::now();
                for _ in 0..sizes.opens {
                    drop(std::fs::File::open(&self.plain)?);
                }
                Ok((sizes.opens as u64, t.elapsed().as_secs_f64()))
            }
            Workload::CachedReads => {
                use std::os::unix::fs::FileExt;
                let f = std::fs::File::open(&self.cached)?;
                let mut buf = [0u8; 4096];
                let page = buf.len() as u64;
                let pages = CACHED_FILE_BYTES as u64 / page;
                let t = Instant::now();
                for i in 0..sizes.preads as u64 {
                    f.read_exact_at(&mut buf, (i % pages) * page)?;
                }
                Ok((sizes.preads as u64, t.elapsed().as_secs_f64()))
            }
            Workload::SecretReads => {
                let mut buf = [0u8; 256];
                let t = Instant::now();
                for i in 0..sizes.reads {
                    let mut f = std::fs::File::open(&self.secrets[i % self.secrets.len()])?;
                    let _ = f.read(&mut buf)?;
                }
                Ok((sizes.reads as u64, t.elapsed().as_secs_f64()))
            }
            Workload::ExecStorm => {
                let t = Instant::now();
                exec_storm(sizes.execs, sizes.exec_threads, &self.marker)?;
                Ok((sizes.execs as u64, t.elapsed().as_secs_f64()))
            }
            Workload::ConnectStorm => {
                let t = Instant::now();
                for _ in 0..sizes.connects {
                    // A failure is counted: a run exhausting ports would look fast.
                    match TcpStream::connect(self.listener) {
                        Ok(s) => close_with_reset(s),
                        Err(_) => {
                            self.connect_failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok((sizes.connects as u64, t.elapsed().as_secs_f64()))
            }
            Workload::UdpSends => {
                let to = self.udp_sink.local_addr()?;
                let s = UdpSocket::bind("127.0.0.1:0")?;
                let payload = [0x42u8; 64];
                let t = Instant::now();
                for _ in 0..sizes.datagrams {
                    s.send_to(&payload, to)
                        .context("sendto the loopback UDP sink")?;
                }
                Ok((sizes.datagrams as u64, t.elapsed().as_secs_f64()))
            }
            Workload::IoUringOpens => {
                let t = Instant::now();
                uring_open_close(&self.plain, sizes.uring_opens)?;
                Ok((sizes.uring_opens as u64, t.elapsed().as_secs_f64()))
            }
            Workload::CBuild => {
                make(&self.c_project, &["clean"])?;
                let t = Instant::now();
                make(&self.c_project, &["-j2"])?;
                Ok((sizes.c_files as u64, t.elapsed().as_secs_f64()))
            }
        }
    }
}

/// `n` opens and closes of `path` issued through io_uring, one at a time.
fn uring_open_close(path: &Path, n: usize) -> Result<()> {
    use io_uring::{opcode, squeue, types, IoUring};
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut ring =
        IoUring::new(8).context("io_uring_setup (is the sysctl kernel.io_uring_disabled set?)")?;
    let mut run = |sqe: squeue::Entry, what: &str| -> Result<i32> {
        // SAFETY: what the entry points at (the path) outlives its
        // completion, which is waited for before returning.
        unsafe { ring.submission().push(&sqe) }.context("io_uring submission queue full")?;
        ring.submit_and_wait(1)
            .with_context(|| format!("io_uring_enter ({what})"))?;
        let cqe = ring
            .completion()
            .next()
            .with_context(|| format!("no io_uring completion for {what}"))?;
        if cqe.result() < 0 {
            bail!(
                "{what} of {} through io_uring: {}",
                path.display(),
                std::io::Error::from_raw_os_error(-cqe.result())
            );
        }
        Ok(cqe.result())
    };
    for _ in 0..n {
        let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), c_path.as_ptr())
            .flags(libc::O_RDONLY | libc::O_CLOEXEC)
            .build();
        let fd = run(open, "IORING_OP_OPENAT")?;
        run(opcode::Close::new(types::Fd(fd)).build(), "IORING_OP_CLOSE")?;
    }
    Ok(())
}

/// `n` execs of /bin/true (with `marker` as argument) from `threads` threads.
pub fn exec_storm(n: usize, threads: usize, marker: &str) -> Result<()> {
    let hs: Vec<_> = (0..threads)
        .map(|k| {
            let marker = marker.to_string();
            std::thread::spawn(move || -> std::io::Result<()> {
                for _ in (k..n).step_by(threads) {
                    Command::new("/bin/true").arg(&marker).status()?;
                }
                Ok(())
            })
        })
        .collect();
    for h in hs {
        h.join().expect("exec thread panicked")?;
    }
    Ok(())
}

fn make(dir: &Path, args: &[&str]) -> Result<()> {
    super::output_ok(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdout(Stdio::null()),
        &format!(
            "make {} in {} (Debian packages make, gcc, libc6-dev)",
            args.join(" "),
            dir.display()
        ),
    )?;
    Ok(())
}

/// A small C program in `files` units (plus main.c) with a Makefile: enough
/// code per unit that gcc -O2 spends tens of milliseconds on each.
fn write_c_project(dir: &Path, files: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut main = String::from("#include <stdio.h>\n");
    let mut calls = String::new();
    for i in 0..files {
        let mut c = String::from("#include <stdint.h>\n#include <string.h>\n");
        for j in 0..40 {
            let _ = write!(
                c,
                "static uint64_t mix{j}(uint64_t x) {{ for (int i = 0; i < {n}; i++) {{ x ^= x << 13; x ^= x >> 7; x ^= x << 17; x += (uint64_t)i * {k}u; }} return x; }}\n\
                 uint64_t unit{i}_f{j}(const char *s) {{ uint64_t h = {k}u; size_t n = strlen(s); for (size_t i = 0; i < n; i++) h = mix{j}(h ^ (uint8_t)s[i]); switch (h % 7) {{ case 0: return h + 1; case 1: return h * 3; case 2: return h ^ 0x55; case 3: return h >> 3; case 4: return ~h; case 5: return h << 2; default: return h; }} }}\n",
                n = 3 + j % 5,
                k = 2654435761u64 + (i * 40 + j) as u64,
            );
            let _ = writeln!(main, "unsigned long unit{i}_f{j}(const char *s);");
            let _ = writeln!(calls, "  acc += unit{i}_f{j}(argv[0]);");
        }
        std::fs::write(dir.join(format!("unit{i}.c")), c)?;
    }
    let _ = write!(
        main,
        "int main(int argc, char **argv) {{\n  (void)argc;\n  unsigned long acc = 0;\n{calls}  printf(\"%lu\\n\", acc);\n  return 0;\n}}\n"
    );
    std::fs::write(dir.join("main.c"), main)?;
    let objs: Vec<String> = (0..files)
        .map(|i| format!("unit{i}.o"))
        .chain(std::iter::once("main.o".into()))
        .collect();
    std::fs::write(
        dir.join("Makefile"),
        format!(
            "CC = gcc\nCFLAGS = -O2 -Wall\nOBJS = {}\n\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n%.o: %.c\n\t$(CC) $(CFLAGS) -c -o $@ $<\n\nclean:\n\trm -f prog $(OBJS)\n",
            objs.join(" ")
        ),
    )?;
    Ok(())
}

/// Raises the accept backlog from std's 128 to 4096 (listen(2) again on a
/// listening socket just changes it). With 128 the queue overflowed whenever
/// the accept thread was not scheduled for a few milliseconds; each dropped
/// SYN costs the client a 1 s retransmit, so an idle machine (slow to wake
/// the thread) measured 400 connects/s and a busy one 20000.
fn widen_backlog(l: &TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid listening socket fd.
    unsafe {
        libc::listen(l.as_raw_fd(), 4096);
    }
}

/// Closes with a RST (SO_LINGER 0): a normal close leaves the client port in
/// TIME_WAIT for 60 s, and a whole run makes ~75k connects, more than the
/// 28k ephemeral ports.
fn close_with_reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

//! A network namespace of the test's own (198.18.77.0/24, from the
//! benchmarking range, exists only inside it) with TCP and UDP listeners:
//! where tests send traffic that must look remote without leaving the host.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
};

/// Debian's interpreter, run directly: a wrapper (pyenv shim) would replace argv[0].
pub const PYTHON3: &str = "/usr/bin/python3";

/// A network namespace with one veth pair: 198.18.77.1 here, 198.18.77.2 inside.
pub struct TestNet {
    ns: String,
    veth: String,
    listeners: Vec<Child>,
    // One test network at a time: they share the 198.18.77.0/24 addresses.
    _exclusive: std::sync::MutexGuard<'static, ()>,
}

static NET_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl TestNet {
    pub fn new() -> Self {
        let exclusive = NET_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Interface names are at most 15 bytes.
        let id = format!("{}{n}", std::process::id() % 100000);
        let ns = format!("proctor-t{id}");
        let veth = format!("pt{id}h");
        let peer = format!("pt{id}n");
        let sh = |cmd: &str| {
            let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
            assert!(st.success(), "network set-up failed: {cmd}");
        };
        sh(&format!("ip netns add {ns}"));
        sh(&format!("ip link add {veth} type veth peer name {peer}"));
        sh(&format!("ip link set {peer} netns {ns}"));
        sh(&format!(
            "ip addr add 198.18.77.1/24 dev {veth} && ip link set {veth} up"
        ));
        sh(&format!(
            "ip netns exec {ns} sh -c 'ip addr add 198.18.77.2/24 dev {peer} && ip link set {peer} up && ip link set lo up'"
        ));
        TestNet {
            ns,
            veth,
            listeners: Vec::new(),
            _exclusive: exclusive,
        }
    }

    /// Runs `script` with python3 inside the namespace until the net is dropped.
    fn spawn_python(&mut self, script: &str) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, PYTHON3, "-c", script])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.listeners.push(child);
    }

    /// A TCP listener at 198.18.77.2:`port` inside the namespace.
    pub fn listen(&mut self, port: u16) {
        let script = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('198.18.77.2',{port}))\ns.listen(16)\nwhile True:\n    c,_=s.accept()\n    c.close()\n"
        );
        self.spawn_python(&script);
        // Wait until it accepts (probing from inside: this process must not
        // be the one talking to the namespace in the tests' evidence).
        for _ in 0..100 {
            if Command::new("ip")
                .args(["netns", "exec", &self.ns, PYTHON3, "-c"])
                .arg(format!("import socket; socket.create_connection(('198.18.77.2',{port}),timeout=1).close()"))
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("listener in {} did not come up", self.ns);
    }

    /// A UDP listener at 198.18.77.2:`port` inside the namespace; every
    /// datagram it receives is appended, one per line, to the returned file.
    pub fn listen_udp(&mut self, port: u16, dir: &Path) -> std::path::PathBuf {
        let log = dir.join(format!("udp-{port}.log"));
        let ready = dir.join(format!("udp-{port}.ready"));
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('198.18.77.2',{port}))\nopen({ready:?},'w').close()\n\
             f=open({log:?},'ab',buffering=0)\n\
             while True:\n    d,_=s.recvfrom(2048)\n    f.write(d+b'\\n')\n",
            ready = ready.to_str().unwrap(),
            log = log.to_str().unwrap(),
        );
        self.spawn_python(&script);
        for _ in 0..100 {
            if ready.exists() {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("UDP listener in {} did not come up", self.ns);
    }
}

/// The datagrams a UDP listener received so far.
pub fn received(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Waits until the listener's log has `line` (datagrams take a moment).
pub fn wait_received(log: &Path, line: &str) {
    for _ in 0..100 {
        if received(log).iter().any(|l| l == line) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("datagram {line} never arrived; got {:?}", received(log));
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for l in &mut self.listeners {
            let _ = l.kill();
            let _ = l.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

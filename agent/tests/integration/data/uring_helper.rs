//! Test helper (compiled with plain `rustc` by the evasion tests): opens and reads a file, or connects, through raw io_uring syscalls and mmap'd rings, or through the plain syscalls for comparison.
//!
//! Usage: `uring_helper uring-read FILE | plain-read FILE | uring-connect IPV4 PORT`.
//! Prints what happened (byte counts and results, never file content).

use std::ffi::{c_int, c_long, c_void, CString};

extern "C" {
    fn syscall(n: c_long, ...) -> c_long;
    fn mmap(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        off: i64,
    ) -> *mut c_void;
    fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int;
}

// Same numbers on x86_64 and arm64 (the unified syscall table).
const SYS_IO_URING_SETUP: c_long = 425;
const SYS_IO_URING_ENTER: c_long = 426;
const IORING_OFF_SQ_RING: i64 = 0;
const IORING_OFF_CQ_RING: i64 = 0x800_0000;
const IORING_OFF_SQES: i64 = 0x1000_0000;
const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_OP_CONNECT: u8 = 16;
const IORING_OP_OPENAT: u8 = 18;
const IORING_OP_READ: u8 = 22;
const PROT_RW: c_int = 0x1 | 0x2;
const MAP_SHARED_POPULATE: c_int = 0x01 | 0x8000;
const AT_FDCWD: i32 = -100;

/// `struct io_uring_params` (include/uapi/linux/io_uring.h).
#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    // io_sqring_offsets
    sq_head: u32,
    sq_tail: u32,
    sq_ring_mask: u32,
    sq_ring_entries: u32,
    sq_flags: u32,
    sq_dropped: u32,
    sq_array: u32,
    sq_resv1: u32,
    sq_user_addr: u64,
    // io_cqring_offsets
    cq_head: u32,
    cq_tail: u32,
    cq_ring_mask: u32,
    cq_ring_entries: u32,
    cq_overflow: u32,
    cq_cqes: u32,
    cq_flags: u32,
    cq_resv1: u32,
    cq_user_addr: u64,
}

/// `struct io_uring_sqe`, the fields used here.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    op_flags: u32,
    user_data: u64,
    pad: [u64; 3],
}

struct Ring {
    fd: c_int,
    sq: *mut u8,
    cq: *mut u8,
    sqes: *mut Sqe,
    p: Params,
}

impl Ring {
    fn new() -> Ring {
        let mut p = Params::default();
        let fd = unsafe { syscall(SYS_IO_URING_SETUP, 4u32, &mut p as *mut Params) } as c_int;
        assert!(
            fd >= 0,
            "io_uring_setup failed: {}",
            std::io::Error::last_os_error()
        );
        let map = |len: usize, off: i64| {
            let m = unsafe {
                mmap(
                    std::ptr::null_mut(),
                    len,
                    PROT_RW,
                    MAP_SHARED_POPULATE,
                    fd,
                    off,
                )
            };
            assert!(m as isize != -1, "mmap of the ring failed");
            m as *mut u8
        };
        let sq = map(
            p.sq_array as usize + p.sq_entries as usize * 4,
            IORING_OFF_SQ_RING,
        );
        let cq = map(
            p.cq_cqes as usize + p.cq_entries as usize * 16,
            IORING_OFF_CQ_RING,
        );
        let sqes = map(p.sq_entries as usize * 64, IORING_OFF_SQES) as *mut Sqe;
        Ring {
            fd,
            sq,
            cq,
            sqes,
            p,
        }
    }

    fn at<T>(base: *mut u8, off: u32) -> *mut T {
        unsafe { base.add(off as usize) as *mut T }
    }

    /// Submits one request and waits for its completion; returns `res`.
    fn run(&mut self, sqe: Sqe) -> i32 {
        use std::sync::atomic::{AtomicU32, Ordering};
        let p = &self.p;
        unsafe {
            let tail = &*(Self::at::<u32>(self.sq, p.sq_tail) as *const AtomicU32);
            let mask = *Self::at::<u32>(self.sq, p.sq_ring_mask);
            let t = tail.load(Ordering::Acquire);
            let idx = t & mask;
            *self.sqes.add(idx as usize) = sqe;
            *Self::at::<u32>(self.sq, p.sq_array).add(idx as usize) = idx;
            tail.store(t + 1, Ordering::Release);
            let n = syscall(
                SYS_IO_URING_ENTER,
                self.fd,
                1u32,
                1u32,
                IORING_ENTER_GETEVENTS,
                0usize,
                0usize,
            );
            assert!(
                n >= 0,
                "io_uring_enter failed: {}",
                std::io::Error::last_os_error()
            );
            let head = &*(Self::at::<u32>(self.cq, p.cq_head) as *const AtomicU32);
            let ctail = &*(Self::at::<u32>(self.cq, p.cq_tail) as *const AtomicU32);
            let cmask = *Self::at::<u32>(self.cq, p.cq_ring_mask);
            let h = head.load(Ordering::Acquire);
            assert!(
                ctail.load(Ordering::Acquire) != h,
                "no completion after io_uring_enter"
            );
            let cqe = Self::at::<u8>(self.cq, p.cq_cqes).add((h & cmask) as usize * 16);
            let res = *(cqe.add(8) as *const i32);
            head.store(h + 1, Ordering::Release);
            res
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("uring-read") => {
            let path = CString::new(args[2].as_str()).unwrap();
            let mut ring = Ring::new();
            let fd = ring.run(Sqe {
                opcode: IORING_OP_OPENAT,
                fd: AT_FDCWD,
                addr: path.as_ptr() as u64,
                user_data: 1,
                ..Sqe::default()
            });
            assert!(fd >= 0, "IORING_OP_OPENAT failed: {}", -fd);
            let mut buf = vec![0u8; 4096];
            let n = ring.run(Sqe {
                opcode: IORING_OP_READ,
                fd,
                addr: buf.as_mut_ptr() as u64,
                len: buf.len() as u32,
                user_data: 2,
                ..Sqe::default()
            });
            assert!(n >= 0, "IORING_OP_READ failed: {}", -n);
            println!("read {n} bytes");
        }
        Some("plain-read") => {
            let n = std::fs::read(&args[2]).expect("plain read").len();
            println!("read {n} bytes");
        }
        Some("uring-connect") => {
            let ip: std::net::Ipv4Addr = args[2].parse().expect("IPv4 address");
            let port: u16 = args[3].parse().expect("port");
            // struct sockaddr_in
            let mut sa = [0u8; 16];
            sa[0..2].copy_from_slice(&2u16.to_ne_bytes());
            sa[2..4].copy_from_slice(&port.to_be_bytes());
            sa[4..8].copy_from_slice(&ip.octets());
            let s = unsafe { socket(2, 1, 0) };
            assert!(s >= 0, "socket failed");
            let mut ring = Ring::new();
            let res = ring.run(Sqe {
                opcode: IORING_OP_CONNECT,
                fd: s,
                addr: sa.as_ptr() as u64,
                off: sa.len() as u64,
                user_data: 3,
                ..Sqe::default()
            });
            println!("connect {res}");
        }
        _ => {
            eprintln!(
                "usage: uring_helper uring-read FILE | plain-read FILE | uring-connect IPV4 PORT"
            );
            std::process::exit(2);
        }
    }
}

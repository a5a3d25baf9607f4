//! The kernel wakes the agent when records pile up in the ring buffer; the
//! periodic drain is only for the few below the threshold. Until the eBPF
//! side forced that wakeup, the default (adaptive) one never fired behind a
//! backlog: the agent read one batch per poll interval and the kernel
//! dropped the rest of any sustained stream.

use std::{io::Read, time::Duration, time::Instant};

use crate::harness::*;

#[test]
fn a_sustained_stream_is_read_on_kernel_wakeups_not_on_the_poll_tick() {
    let _machine = exclusive();
    // Not under /tmp, which is 0700 here.
    let home = tempfile::tempdir_in("/var/tmp").unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    let creds = home.path().join(".aws/credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            "AKIAQ3WE8R5T2Y7UWAKE", "k2Jh8Gf5Ds1Aq9Wz3Xc7Vb4Nm6Lp0Oi2Ku4Yt8R"
        ),
    )
    .unwrap();
    // A 256 KiB ring holds ~120 file-open records (40 ms of this stream) or
    // ~1,700 of the page-cache set's read records (0.6 s). The stream runs
    // 2 s, so with a 1 s poll and no wakeups at least one full second of it
    // (3,000 records) falls between two drains and overflows the ring on
    // every hook set, whenever the polls land.
    let agent = AgentProc::start(&format!(
        "status_interval: 500ms\n{TEST_METRICS}state_dir: {state}\n\
         kernel:\n  ring_buffer_bytes: 262144\n  wakeup_bytes: 16384\n  poll_interval: 1s\n  repeat_window: 0s\n\
         secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n",
        state = state.path().display(),
        home = home.path().display(),
    ));
    let dropped =
        |s: &serde_json::Value| s["status"]["kernel"]["dropped"]["total"].as_u64().unwrap();
    let before = agent.status_after(agent.last_seq());
    // 6000 accesses paced over ~2 s: open, one byte, close (a record on
    // every file hook set).
    const N: u64 = 6000;
    const STREAM_US: u64 = 2_000_000;
    let start = Instant::now();
    for i in 0..N {
        let mut f = std::fs::File::open(&creds).unwrap();
        let _ = f.read(&mut [0u8; 1]).unwrap();
        if i % 30 == 29 {
            let due = Duration::from_micros(i * STREAM_US / N);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
    let path = creds.to_str().unwrap();
    let ours = |agent: &AgentProc| {
        agent
            .events()
            .iter()
            .filter(|e| e["kind"] == "file_open" && e["file"]["path"] == path)
            .count() as u64
    };
    // The tail below the wakeup threshold (up to 16 KiB: a hundred read
    // records) waits for the periodic drain, a poll interval at most; two
    // statuses after that, the agent has read what the kernel kept for it.
    std::thread::sleep(Duration::from_millis(1100));
    agent.status_after(agent.last_seq());
    let after = agent.status_after(agent.last_seq());
    let lost = dropped(&after) - dropped(&before);
    let seen = ours(&agent);
    assert_eq!(
        lost, 0,
        "the kernel dropped {lost} records of a 3000/s stream into a 256 KiB ring: the agent was not woken ({seen} of {N} accesses reported)"
    );
    assert_eq!(seen, N, "{seen} of {N} accesses reported, none dropped");
}

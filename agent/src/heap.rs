//! How the agent's heap (glibc's malloc) gives memory back: few arenas, and
//! freed pages returned after the jobs that free a lot at once.

/// Three malloc arenas instead of glibc's 8 per core: the hashing and API
/// threads each grew an arena that kept its freed pages (two held the bench
/// soak's plateau 3 MiB lower than the default). Three, not two, since the
/// inventory writer thread: it took the second arena, the hashing and
/// discovery threads fell back to the main heap, and the idle RSS grew by
/// 4-6 MiB. Called before any thread starts.
pub fn limit_arenas() {
    // SAFETY: mallopt only sets a parameter (and fails on an unknown one).
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 3)
    };
}

/// Fast bins for requests up to 160 bytes (glibc's default stops at 128):
/// a secret read's short-lived pieces (its file record, the finding's
/// summary, ...) are made in bursts of thousands by the ingest and freed in
/// bursts by the emitter, past what the per-thread cache holds (7 of a
/// size), and a fast bin takes them back without coalescing.
pub fn fast_small_allocations() {
    // SAFETY: mallopt only sets a parameter (and fails on an unknown one).
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_MXFAST, 160)
    };
}

/// Hands the freed pages at the top of every arena back to the system.
/// For after a job that freed tens of MiB or more (start-up's BTF parsing,
/// a discovery rescan): glibc keeps what it freed for reuse, and an arena
/// of a blocking-pool thread that ran such a job keeps it for good.
pub fn give_back_freed() {
    // SAFETY: malloc_trim has no preconditions.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0)
    };
}

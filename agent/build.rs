//! Builds the eBPF object (ebpf/) with the nightly toolchain and bpf-linker
//! and hands its path to the agent through `PROCTOR_BPF_OBJECT`.
//!
//! The toolchain pieces are installed by `cargo xtask setup`; this script only
//! finds them and says so plainly when they are missing.

use std::{env, path::PathBuf, process::Command};

fn tools_dir() -> PathBuf {
    if let Some(dir) = env::var_os("PROCTOR_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let home = env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/proctor/tools")
}

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let ebpf = root.join("ebpf");
    for p in [
        "ebpf/src",
        "ebpf/Cargo.toml",
        "ebpf/Cargo.lock",
        "common/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=PROCTOR_TOOLS_DIR");

    let tools_bin = tools_dir().join("bin");
    if !tools_bin.join("bpf-linker").exists() {
        panic!(
            "cannot build the eBPF programs: bpf-linker not found in {}; run `cargo xtask setup` \
             (it installs rust-src for nightly and builds bpf-linker against nightly's LLVM)",
            tools_bin.display()
        );
    }
    let target_dir = root.join("target").join("ebpf");
    let path = format!(
        "{}:{}",
        tools_bin.display(),
        env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "build", "--release"])
        .current_dir(&ebpf)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("PATH", path);
    // The outer cargo points these at the stable toolchain; the inner build must not inherit them.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run `rustup run nightly cargo`: is rustup installed?");
    if !status.success() {
        panic!(
            "building the eBPF programs in {} failed (see above)",
            ebpf.display()
        );
    }
    let obj = target_dir.join("bpfel-unknown-none/release/proctor-ebpf");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("proctor.bpf.o");
    std::fs::copy(&obj, &out).expect("copy eBPF object");
    println!("cargo:rustc-env=PROCTOR_BPF_OBJECT={}", out.display());

    build_api_protos(&root);
    build_spire_plugin_protos(&root);
}

/// The gRPC API (proto/proctor/v1) to Rust, in OUT_DIR. protox parses the
/// .proto files in-process (pure Rust), so no `protoc` has to be installed.
fn build_api_protos(root: &std::path::Path) {
    let dir = root.join("proto");
    let files = ["attestation.proto", "events.proto", "inventory.proto"]
        .map(|f| dir.join("proctor/v1").join(f));
    println!("cargo:rerun-if-changed={}", dir.display());
    let fds = protox::compile(&files, [&dir]).unwrap_or_else(|e| panic!("proto/: {e}"));
    tonic_prost_build::configure()
        .type_attribute(".proctor.v1", "#[derive(serde::Serialize)]")
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generate the gRPC API code from proto/: {e}"));
}

/// The protocols `proctor spire-plugin` serves (SPIRE's plugin SDK services and
/// hashicorp/go-plugin's own), server side only: the SPIRE agent is the client.
fn build_spire_plugin_protos(root: &std::path::Path) {
    let dir = root.join("proto");
    let files = [
        "spire/plugin/agent/workloadattestor/v1/workloadattestor.proto",
        "spire/service/common/config/v1/config.proto",
        "spire/service/private/init/v1/init.proto",
        "goplugin/goplugin.proto",
    ]
    .map(|f| dir.join(f));
    let fds = protox::compile(&files, [&dir]).unwrap_or_else(|e| panic!("proto/: {e}"));
    tonic_prost_build::configure()
        .build_client(false)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generate the SPIRE plugin code from proto/: {e}"));
}

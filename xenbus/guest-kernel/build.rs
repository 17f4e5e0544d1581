//! Links the `kernel` binary as a freestanding static ELF at 1 MiB with the PVH
//! entry note (see `link.ld`); the library needs nothing special.

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=src/start.S");
    if std::env::var_os("CARGO_FEATURE_KERNEL").is_none() {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    // rust-lld (Rust's default linker driver here) rejects GNU-ld-only flags such
    // as --no-warn-rwx-segments: keep to these.
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{dir}/link.ld");
}

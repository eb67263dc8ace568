//! The bench reuses the main crate's Node server machinery (tests/support/node.rs), which finds
//! tests/node under `SIO_CLIENT_ROOT` when set at compile time, else under its own crate's
//! manifest directory; here that is the sio-client checkout two levels up.

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("..").join("..");
    let root = root.canonicalize().unwrap_or(root);
    println!("cargo:rustc-env=SIO_CLIENT_ROOT={}", root.display());
    println!("cargo:rerun-if-changed=build.rs");
}

//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) and any committed crashers
//! (`fuzz/artifacts/<target>/`) through the same harness functions the cargo-fuzz targets run,
//! so a plain `cargo test` (CI has no cargo-fuzz) keeps every seed and past finding passing.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file under `fuzz/<kind>/<target>/`, sorted (empty when the directory is absent).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, harness) = harness::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap();
    let corpus = inputs("corpus", target);
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ has no seed inputs"
    );
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&inputs("artifacts", target)) {
        // A fuzzer running meanwhile replaces corpus files as it shrinks them.
        let data = match fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        if let Err(message) = harness::run_catching(*harness, &data) {
            failures.push(format!("{}: {message}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} input(s) of {target} fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn engineio_packet_corpus() {
    replay("engineio_packet");
}

#[test]
fn engineio_payload_corpus() {
    replay("engineio_payload");
}

#[test]
fn socketio_decoder_corpus() {
    replay("socketio_decoder");
}

#[test]
fn sse_decoder_corpus() {
    replay("sse_decoder");
}

#[test]
fn engineio_session_corpus() {
    replay("engineio_session");
}

/// The harness table, the fuzz target sources and the `[[bin]]` entries name the same targets,
/// so no target is fuzzed without being replayed here, or the other way round.
#[test]
fn every_target_is_declared_everywhere() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut sources: Vec<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            path.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    sources.sort();
    let mut names: Vec<String> = harness::TARGETS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    names.sort();
    assert_eq!(sources, names);
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

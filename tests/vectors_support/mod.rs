//! Loading the reference vectors (`../shared/vectors/`, produced by running
//! the Go code; never copied into this repository) for the memberlist and
//! ckit conformance tests.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

pub fn path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vectors")
        .join(file)
}

pub fn text(file: &str) -> String {
    let path = path(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reference vectors not found: cannot read {} ({e}). They live next to this \
             repository in shared/vectors/ and must not be copied into it",
            path.display()
        )
    })
}

pub fn json(file: &str) -> Value {
    serde_json::from_str(&text(file)).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"))
}

pub fn jsonl(file: &str) -> Vec<Value> {
    text(file)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: bad line: {e}")))
        .collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

pub fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// A hex string field of a JSON object.
pub fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    unhex(
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key:?} in {v}")),
    )
}

/// Collects failures so one run reports every broken case, each by name.
#[derive(Default)]
pub struct Failures(Vec<String>);

impl Failures {
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, case: &str, got: T, want: T) {
        if got != want {
            self.0
                .push(format!("{case}:\n   got {got:?}\n  want {want:?}"));
        }
    }

    pub fn push(&mut self, failure: String) {
        self.0.push(failure);
    }

    pub fn finish(self, checked: usize) {
        assert!(checked > 0, "no vector was checked");
        assert!(
            self.0.is_empty(),
            "{} of {checked} checks failed:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

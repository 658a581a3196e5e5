//! What the commands print: JSON event lines and plain lines on stdout,
//! errors and warnings on stderr, and how a failure maps to an exit code.

use serde::Serialize;
use std::io::Write;

/// Exit code for a failure talking to a peer (or serving).
const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error, as clap uses.
const EXIT_USAGE: u8 = 2;

/// A failed command: its message and exit code.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Bad flags or inputs (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// Trouble binding or talking to a peer (exit 1).
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

pub type CmdResult = Result<(), Failure>;

/// An error with its chain of causes, each once.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !s_text.is_empty() && !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Writes one line to stdout and flushes it. A closed stdout is ignored:
/// there is no one left to tell.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Writes `warning: ...` to stderr.
pub fn warn(message: &str) {
    let _ = writeln!(std::io::stderr(), "warning: {message}");
}

/// One line of `listen`'s output. `event` comes first in each line; bytes
/// are lower-case hex. `stream` numbers the streams of one `listen` run
/// from 1, so the events of streams that overlap can be told apart.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    Packet {
        from: &'a str,
        len: usize,
        hex: String,
    },
    StreamOpen {
        stream: u64,
        from: &'a str,
    },
    StreamData {
        stream: u64,
        from: &'a str,
        len: usize,
        hex: String,
    },
    /// `bytes` counts every byte the stream received; `error` is there
    /// only when the stream ended abnormally.
    StreamClose {
        stream: u64,
        from: &'a str,
        bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Event<'_> {
    /// Prints the event as one JSON line.
    pub fn emit(&self) {
        match serde_json::to_string(self) {
            Ok(line) => emit(&line),
            // Strings and numbers always serialize; this is unreachable in
            // practice, and a lost line is no reason to stop serving.
            Err(e) => warn(&format!("cannot print an event: {e}")),
        }
    }
}

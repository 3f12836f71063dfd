//! Crash-point fault injection: kill the process between two side effects, as a Lambda
//! sandbox dies on a timeout, an out-of-memory or a host failure.
//!
//! A function marks each point between two side effects with [`crash_point`]. When the
//! environment variable `FAULT_CRASH_AT` names that point (a comma-separated list of names),
//! the process logs one line and calls [`std::process::abort`] right there: no unwinding, no
//! destructor, no response to Lambda. Lambda (or devstack, which plays its part locally)
//! restarts the function and the event source redelivers.
//!
//! With `FAULT_CRASH_ONCE_DIR` set, each named point fires once: the first process to reach it
//! creates the marker file `{dir}/{point}` (atomically, `create_new`) and aborts; later
//! processes find the marker and go on. Tests use that to crash exactly once and then check
//! that the redelivery reaches the crash-free outcome, and that the marker exists (the
//! point was really reached). Without it, a named point fires every time it is reached.
//!
//! Unset (as in every deployed stack), a crash point costs one environment lookup.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::PathBuf;

/// The variable naming the crash points to fire.
pub const CRASH_AT_ENV: &str = "FAULT_CRASH_AT";
/// The folder of fire-once markers.
pub const ONCE_DIR_ENV: &str = "FAULT_CRASH_ONCE_DIR";

/// Aborts the process here when `FAULT_CRASH_AT` names `point` (see the module docs).
pub fn crash_point(point: &'static str) {
    let Ok(armed) = std::env::var(CRASH_AT_ENV) else {
        return;
    };
    if !armed.split(',').any(|name| name.trim() == point) {
        return;
    }
    if let Some(dir) = std::env::var_os(ONCE_DIR_ENV) {
        let marker = PathBuf::from(dir).join(point);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => return,
            Err(err) => {
                tracing::error!(point, marker = %marker.display(), %err, "crash marker not writable; not crashing");
                return;
            }
        }
    }
    tracing::error!(point, "fault injection: crashing the process here");
    std::process::abort();
}

/// Whether `point` has fired (its marker exists in `dir`).
pub fn fired(dir: &std::path::Path, point: &str) -> bool {
    dir.join(point).exists()
}

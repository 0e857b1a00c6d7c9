//! `--bwlimit`: one byte budget for every data connection of the process, uploads and
//! downloads together, as rclone's `--bwlimit` is one limit for the whole run. A virtual clock:
//! each chunk moves the time the next byte may go by `len / rate`; a sender ahead of that time
//! sleeps until it. Up to [`BURST`] of sending may run ahead, so that small files and short
//! pauses do not lose their share.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead of the budget a sender may run before it waits.
const BURST: Duration = Duration::from_millis(200);

struct Limit {
    bytes_per_sec: u64,
    /// When the budget is spent up to: the next byte may go then.
    next: Mutex<Option<Instant>>,
}

fn limit() -> &'static OnceLock<Limit> {
    static LIMIT: OnceLock<Limit> = OnceLock::new();
    &LIMIT
}

/// Limits every transfer of this process to `bytes_per_sec` in total (0: no limit). The first
/// call wins: the CLI sets it once, from `--bwlimit`.
pub fn set_bandwidth_limit(bytes_per_sec: u64) {
    if bytes_per_sec > 0 {
        let _ = limit().set(Limit {
            bytes_per_sec,
            next: Mutex::new(None),
        });
    }
}

/// Waits until `n` more bytes fit in the budget (at once when there is no limit).
pub(crate) async fn take(n: usize) {
    let Some(l) = limit().get() else { return };
    let cost = Duration::from_secs_f64(n as f64 / l.bytes_per_sec as f64);
    let wait_until = {
        let now = Instant::now();
        // A poisoned lock only means a panic elsewhere; the clock is still usable.
        let mut next = l.next.lock().unwrap_or_else(|p| p.into_inner());
        // An idle budget does not pile up beyond the burst.
        let start = next.map_or(now, |t| t.max(now.checked_sub(BURST).unwrap_or(now)));
        *next = Some(start + cost);
        start + cost
    };
    let now = Instant::now();
    if wait_until > now + BURST {
        tokio::time::sleep_until(wait_until - BURST).await;
    }
}

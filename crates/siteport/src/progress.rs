//! Transfer progress: indicatif bars (files, bytes, one line per connection) on a terminal,
//! plain lines otherwise (one per file at `-v`, a stats line every `--stats` interval),
//! nothing with `-q` or `--json` (stats lines aside).
//!
//! Bytes are counted as they go: the engine adds every chunk sent or received to a counter
//! ([`Progress::live_bytes`]) that a ticker thread reads a few times a second to move the
//! bytes bar, its rate, ETA and clock, so a 20 MiB file on a slow server does not freeze
//! the display until it ends.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use siteport_sync::{Action, FileOutcome, Op, Plan, Progress, Status};

use crate::logging::{Verbosity, clean, eprint_redacted};

/// How often the bars are redrawn from the live byte count (rclone and lftp: every 0.5 s).
const REDRAW: Duration = Duration::from_millis(200);

/// How progress is shown for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing (`-q`, `--json`, or a dry run).
    Silent,
    /// One stderr line per finished file (`-v` without a terminal).
    Lines,
    /// Bars on stderr (a terminal, not `-q`/`--json`).
    Bars,
}

impl Mode {
    /// The mode for these flags and the current stderr.
    pub fn choose(verbosity: Verbosity, json: bool) -> Mode {
        if json || verbosity == Verbosity::Quiet {
            Mode::Silent
        } else if bars_drawable() {
            Mode::Bars
        } else if matches!(verbosity, Verbosity::Verbose(_)) {
            Mode::Lines
        } else {
            Mode::Silent
        }
    }
}

/// Whether bars can be drawn on stderr: a terminal that is not `TERM=dumb` (nor without
/// `TERM`), where indicatif would draw nothing at all. Elsewhere the stats lines speak.
fn bars_drawable() -> bool {
    let dumb = std::env::var("TERM").map_or(true, |t| t.is_empty() || t == "dumb");
    std::io::stderr().is_terminal() && !dumb
}

/// The `--stats` interval in effect: `interval` (default 30 s) when stderr cannot show bars
/// (not a terminal, or a dumb one) and the run is not quiet; `None` for `0` or otherwise.
pub fn stats_interval(interval: Option<Duration>, verbosity: Verbosity) -> Option<Duration> {
    let every = interval.unwrap_or(DEFAULT_STATS);
    (!every.is_zero() && verbosity != Verbosity::Quiet && !bars_drawable()).then_some(every)
}

/// `--stats` when not given.
pub const DEFAULT_STATS: Duration = Duration::from_secs(30);

/// A [`Progress`] for the CLI.
pub struct CliProgress {
    mode: Mode,
    site: String,
    /// Print a stats line this often (a non-terminal).
    stats: Option<Duration>,
    /// Bytes of transfers so far, counted by the engine as they go.
    moved: Arc<AtomicU64>,
    /// Actions finished (for the stats line).
    done: Arc<AtomicU64>,
    bars: Mutex<Option<Bars>>,
    /// The display shared with other sites running at once (`--parallel-sites`): this
    /// site's bars are added to it and removed when done, and it has no per-connection lines.
    display: Option<MultiProgress>,
    /// The thread that redraws the bars or prints stats lines; it ends when the sender is
    /// dropped.
    ticker: Mutex<Option<(Sender<()>, std::thread::JoinHandle<()>)>>,
}

struct Bars {
    multi: MultiProgress,
    files: ProgressBar,
    bytes: ProgressBar,
    workers: Vec<ProgressBar>,
}

/// What a stats line says about the plan.
#[derive(Clone)]
struct Totals {
    site: String,
    actions: u64,
    bytes: u64,
}

impl CliProgress {
    /// Progress for `site` in `mode`, with a stats line every `stats` (see [`stats_interval`]).
    pub fn new(mode: Mode, site: &str, stats: Option<Duration>) -> Self {
        Self {
            mode,
            site: site.to_owned(),
            stats,
            moved: Arc::default(),
            done: Arc::default(),
            bars: Mutex::new(None),
            display: None,
            ticker: Mutex::new(None),
        }
    }

    /// Draws into `display`, shared with the other sites running at once, when there is one.
    pub fn shared(mut self, display: &Option<MultiProgress>) -> Self {
        self.display = display.clone();
        self
    }

    /// Runs `f`, which prints, with the shared display's bars hidden meanwhile (without a
    /// shared display nothing else is drawing: the site's own bars are cleared by then).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.display {
            Some(d) => d.suspend(f),
            None => f(),
        }
    }

    fn with_bars(&self, f: impl FnOnce(&mut Bars)) {
        let mut guard = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = guard.as_mut() {
            f(b);
        }
    }

    /// Removes the bars and stops the stats lines (before the summary is printed).
    pub fn clear(&self) {
        let ticker = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, thread)) = ticker {
            drop(stop);
            let _ = thread.join();
        }
        let mut guard = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = guard.take() {
            for w in &b.workers {
                w.finish_and_clear();
            }
            b.files.finish_and_clear();
            b.bytes.finish_and_clear();
            if self.display.is_some() {
                // Other sites still draw there: only this site's bars go.
                b.multi.remove(&b.files);
                b.multi.remove(&b.bytes);
            } else {
                let _ = b.multi.clear();
            }
        }
    }

    /// Starts the thread that calls `tick` every `every` until [`clear`](Self::clear).
    fn start_ticker(&self, every: Duration, mut tick: impl FnMut() + Send + 'static) {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    tick();
                }
            });
        // Without the thread the display still moves at every file's end.
        if let Ok(thread) = spawned {
            let old = self
                .ticker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .replace((stop, thread));
            if let Some((old_stop, old_thread)) = old {
                drop(old_stop);
                let _ = old_thread.join();
            }
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; should one ever be wrong, fall back to the default look.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The bytes bar's style: sizes and rate in the summary's units (`4.0 MiB/20.0 MiB`).
fn bytes_style() -> ProgressStyle {
    style("{prefix:>12} [{bar:30}] {done}/{total} {rate} eta {eta}")
        .with_key("done", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&human_size(s.pos()));
        })
        .with_key("total", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&human_size(s.len().unwrap_or(0)));
        })
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}/s", human_size(s.per_sec() as u64));
        })
}

impl Progress for CliProgress {
    fn live_bytes(&self) -> Option<Arc<AtomicU64>> {
        Some(self.moved.clone())
    }

    fn planned(&self, plan: &Plan) {
        let s = plan.summary();
        // Every action that reports a finish: the bar never reads 16/15.
        let total = (s.transfer + s.delete + s.mkdir + s.rmdir + s.conflict) as u64;
        if self.mode == Mode::Bars {
            let multi = self
                .display
                .clone()
                .unwrap_or_else(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
            let files = multi.add(ProgressBar::new(total));
            files.set_style(style(
                "{prefix:>12} [{bar:30}] {pos}/{len} actions {elapsed_precise}",
            ));
            files.set_prefix(self.site.clone());
            let bytes = multi.add(ProgressBar::new(s.bytes));
            bytes.set_style(bytes_style());
            bytes.set_prefix("bytes");
            let (f, b, moved) = (files.clone(), bytes.clone(), self.moved.clone());
            *self.bars.lock().unwrap_or_else(|p| p.into_inner()) = Some(Bars {
                multi,
                files,
                bytes,
                workers: Vec::new(),
            });
            // Bytes, rate, ETA and clock move while a file is under way.
            self.start_ticker(REDRAW, move || {
                b.set_position(moved.load(Ordering::Relaxed));
                f.tick();
            });
        } else if let Some(every) = self.stats {
            let totals = Totals {
                site: self.site.clone(),
                actions: total,
                bytes: s.bytes,
            };
            let (moved, done, started) = (self.moved.clone(), self.done.clone(), Instant::now());
            self.start_ticker(every, move || {
                let line = stats_line(
                    &totals,
                    done.load(Ordering::Relaxed),
                    moved.load(Ordering::Relaxed),
                    started.elapsed(),
                );
                eprint_redacted(&format!("{line}\n"));
            });
        }
    }

    fn started(&self, worker: usize, action: &Action) {
        if self.display.is_some() {
            // Several sites at once: two lines a site, no line per connection.
            return;
        }
        self.with_bars(|b| {
            while b.workers.len() <= worker {
                let w = b.multi.add(ProgressBar::new_spinner());
                w.set_style(style("{prefix:>12} {msg}"));
                w.set_prefix(format!("conn {}", b.workers.len() + 1));
                b.workers.push(w);
            }
            b.workers[worker].set_message(
                crate::output::escape_controls(&format!("{} {}", action.op.as_str(), action.path))
                    .into_owned(),
            );
        });
    }

    fn finished(&self, worker: usize, outcome: &FileOutcome) {
        self.done.fetch_add(1, Ordering::Relaxed);
        match self.mode {
            Mode::Silent => {}
            Mode::Lines if self.display.is_some() => {
                // Several sites at once: each line says whose it is.
                eprint_redacted(&format!("{}: {}\n", self.site, outcome_line(outcome)));
            }
            Mode::Lines => eprint_redacted(&format!("{}\n", outcome_line(outcome))),
            Mode::Bars => self.with_bars(|b| {
                // An action the plan did not list (the remote root, created when missing).
                if b.files
                    .length()
                    .is_some_and(|len| b.files.position() >= len)
                {
                    b.files.inc_length(1);
                }
                b.files.inc(1);
                b.bytes.set_position(self.moved.load(Ordering::Relaxed));
                if let Some(w) = b.workers.get(worker) {
                    w.set_message("");
                }
                if outcome.failed() {
                    b.multi
                        .suspend(|| eprint_redacted(&format!("{}\n", outcome_line(outcome))));
                }
            }),
        }
    }

    fn notice(&self, message: &str) {
        match self.mode {
            Mode::Silent => tracing::info!("{message}"),
            Mode::Lines => eprint_redacted(&format!("note: {message}\n")),
            Mode::Bars => self.with_bars(|b| {
                let _ = b.multi.println(clean(&format!("note: {message}")));
            }),
        }
    }
}

impl Drop for CliProgress {
    fn drop(&mut self) {
        // A run that ends on an error path without `clear` still stops its ticker.
        self.clear();
    }
}

/// `acme: 3/10 actions, 12.5 MiB/40.0 MiB (31%), 4.2 MiB/s, 3 s elapsed`.
fn stats_line(t: &Totals, done: u64, moved: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        (moved as f64 / secs) as u64
    } else {
        0
    };
    // Nothing to send (only deletes): no percentage.
    let pct = (u128::from(moved.min(t.bytes)) * 100)
        .checked_div(u128::from(t.bytes))
        .map(|p| format!(" ({p}%)"))
        .unwrap_or_default();
    format!(
        "{}: {done}/{} actions, {}/{}{pct}, {}/s, {} elapsed",
        t.site,
        t.actions,
        human_size(moved),
        human_size(t.bytes),
        human_size(rate),
        human_duration(elapsed),
    )
}

/// `42 s`, `3 m 05 s`, `1 h 02 m`.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} m {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} m", s / 3600, s % 3600 / 60),
    }
}

/// A size for people: bytes up to 1023 (`512 B`), then binary units with one decimal
/// (`1.5 KiB`, `20.0 MiB`, `1.0 GiB`). `--json` keeps exact byte counts.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    // Moved up before rounding would print `1024.0 KiB`.
    while v >= 1023.95 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `uploaded  path (1.5 KiB)` or `FAILED upload path: why`.
pub fn outcome_line(o: &FileOutcome) -> String {
    match &o.status {
        Status::Failed { message, .. } => {
            format!("FAILED {:<9} {}: {message}", o.op.as_str(), o.path)
        }
        _ => {
            let done = match o.op {
                Op::Upload => "uploaded",
                Op::Download => "downloaded",
                Op::Delete => "deleted",
                Op::Mkdir => "created",
                Op::RemoveDir => "removed",
                Op::Skip => "unchanged",
                Op::Conflict => "conflict",
            };
            if matches!(o.op, Op::Upload | Op::Download) {
                format!("{done:<10} {} ({})", o.path, human_size(o.bytes))
            } else {
                format!("{done:<10} {}", o.path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary_with_one_decimal() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1), "1 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(human_size(20_971_519), "20.0 MiB");
        // Never `1024.0 KiB`: just under a MiB already reads as one.
        assert_eq!(human_size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_size(1024 * 1024 - 60), "1023.9 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(human_size(3 << 40), "3.0 TiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn stats_line_says_actions_bytes_rate_and_clock() {
        let t = Totals {
            site: "acme".into(),
            actions: 10,
            bytes: 40 * 1024 * 1024,
        };
        let line = stats_line(&t, 3, 10 * 1024 * 1024, Duration::from_secs(125));
        assert_eq!(
            line,
            "acme: 3/10 actions, 10.0 MiB/40.0 MiB (25%), 81.9 KiB/s, 2 m 05 s elapsed"
        );
        let empty = Totals {
            site: "a".into(),
            actions: 1,
            bytes: 0,
        };
        assert_eq!(
            stats_line(&empty, 0, 0, Duration::ZERO),
            "a: 0/1 actions, 0 B/0 B, 0 B/s, 0 s elapsed"
        );
    }
}

//! Transfer progress: indicatif bars (files, bytes, one line per connection) on a terminal,
//! plain lines otherwise (one per file at `-v`), nothing with `-q` or `--json`.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use siteport_sync::{Action, FileOutcome, Op, Plan, Progress, Status};

use crate::logging::{Verbosity, clean, eprint_redacted};

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
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else if matches!(verbosity, Verbosity::Verbose(_)) {
            Mode::Lines
        } else {
            Mode::Silent
        }
    }
}

/// A [`Progress`] for the CLI.
pub struct CliProgress {
    mode: Mode,
    site: String,
    bars: Mutex<Option<Bars>>,
}

struct Bars {
    multi: MultiProgress,
    files: ProgressBar,
    bytes: ProgressBar,
    workers: Vec<ProgressBar>,
}

impl CliProgress {
    /// Progress for `site` in `mode`.
    pub fn new(mode: Mode, site: &str) -> Self {
        Self {
            mode,
            site: site.to_owned(),
            bars: Mutex::new(None),
        }
    }

    fn with_bars(&self, f: impl FnOnce(&mut Bars)) {
        let mut guard = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = guard.as_mut() {
            f(b);
        }
    }

    /// Removes the bars (before the summary is printed).
    pub fn clear(&self) {
        let mut guard = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = guard.take() {
            for w in &b.workers {
                w.finish_and_clear();
            }
            b.files.finish_and_clear();
            b.bytes.finish_and_clear();
            let _ = b.multi.clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; should one ever be wrong, fall back to the default look.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Progress for CliProgress {
    fn planned(&self, plan: &Plan) {
        if self.mode != Mode::Bars {
            return;
        }
        let s = plan.summary();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        // Every action that reports a finish: the bar never reads 16/15.
        let total = s.transfer + s.delete + s.mkdir + s.rmdir + s.conflict;
        let files = multi.add(ProgressBar::new(total as u64));
        files.set_style(style(
            "{prefix:>12} [{bar:30}] {pos}/{len} actions {elapsed_precise}",
        ));
        files.set_prefix(self.site.clone());
        let bytes = multi.add(ProgressBar::new(s.bytes));
        bytes.set_style(style(
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ));
        bytes.set_prefix("bytes");
        *self.bars.lock().unwrap_or_else(|p| p.into_inner()) = Some(Bars {
            multi,
            files,
            bytes,
            workers: Vec::new(),
        });
    }

    fn started(&self, worker: usize, action: &Action) {
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
        match self.mode {
            Mode::Silent => {}
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
                b.bytes.inc(outcome.bytes);
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

/// `uploaded  path (123 bytes)` or `FAILED upload path: why`.
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
                format!("{done:<10} {} ({} bytes)", o.path, o.bytes)
            } else {
                format!("{done:<10} {}", o.path)
            }
        }
    }
}

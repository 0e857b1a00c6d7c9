//! `--exclude`, `--include`, `--exclude-from` and `--ignore-times` of `export`, `import` and
//! `plan`: what rclone and lftp users reach for, in the config's glob syntax.
//!
//! The rule: a path is left out when one of the site's `exclude` patterns, an `--exclude` or a
//! line of an `--exclude-from` file matches it, and no `--include` does. An include wins over
//! every exclude whatever the order on the command line (unlike rclone's first-match order,
//! so that a pattern's place in a long command never changes its meaning).

use std::path::PathBuf;

use clap::Args;
use siteport_sync::{Direction, Excludes, Op, Plan, Reason};

use crate::config::ResolvedSite;
use crate::error::{CliError, CliResult};

/// Filters and comparison options shared by `export`, `import` and `plan`.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Leave out paths matching GLOB, as the site's `exclude` list does (`*.tmp`, `drafts/**`);
    /// added to that list. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Take back paths matching GLOB from the excludes: an include wins over every exclude,
    /// whatever the order. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Exclude patterns from FILE, one per line (blank lines and lines starting with `#` are
    /// skipped). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
    /// Send every file that is not provably equal: matching sizes and times, and the journal's
    /// record, are not taken as proof (plain FTP has no content hash), so every file is sent.
    #[arg(long)]
    pub ignore_times: bool,
}

impl FilterArgs {
    /// The site's excludes with these added (and includes taken back out).
    pub fn excludes(&self, site: &ResolvedSite) -> CliResult<Excludes> {
        let mut patterns = site.exclude.clone();
        let from_site = patterns.len();
        patterns.extend(self.exclude.iter().cloned());
        for f in &self.exclude_from {
            let text = std::fs::read_to_string(f).map_err(|e| {
                CliError::usage(format!("--exclude-from {}: {e}", f.display()))
                    .with_hint("name a readable file with one glob pattern per line")
            })?;
            patterns.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        let bad = |what: &str, e: siteport_sync::Error| {
            CliError::usage(format!("{what}: {}", e.detail()))
                .with_hint("fix the glob pattern (`*`, `**`, `?`, `[abc]`, `{a,b}`; `\\` escapes)")
        };
        // The site's own patterns were checked at load, with file:line:column.
        let what = if patterns.len() > from_site {
            "--exclude/--exclude-from"
        } else {
            "exclude"
        };
        Excludes::new(&patterns)
            .map_err(|e| bad(what, e))?
            .with_includes(&self.include)
            .map_err(|e| bad("--include", e))
    }

    /// With `--ignore-times`, every file the plan skipped as unchanged is sent instead.
    pub fn apply(&self, plan: &mut Plan) {
        if !self.ignore_times {
            return;
        }
        let transfer = match plan.direction {
            Direction::Export => Op::Upload,
            Direction::Import => Op::Download,
        };
        for a in plan.actions.iter_mut().filter(|a| a.op == Op::Skip) {
            a.op = transfer;
            a.reason = Reason::IgnoreTimes;
        }
    }
}

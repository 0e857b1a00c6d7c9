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

/// Parses a `--bwlimit` rate: bytes per second, with an optional `K`, `M` or `G` suffix
/// (powers of 1024, as rclone reads them; a trailing `B`, `iB` or `/s` is allowed): `512K`,
/// `1.5M`, `2MiB/s`.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let not_a_rate = || format!("'{text}' is not a rate such as 512K or 1.5M (K, M, G)");
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(not_a_rate()),
    };
    let n: f64 = num.trim().parse().map_err(|_| not_a_rate())?;
    let bytes = n * mult as f64;
    if !(bytes >= 1024.0 && bytes.is_finite()) {
        return Err(format!(
            "'{text}': the limit must be at least 1K per second"
        ));
    }
    Ok(bytes as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("512K"), Ok(512 * 1024));
        assert_eq!(parse_rate("1.5M"), Ok(1536 * 1024));
        assert_eq!(parse_rate("2MiB/s"), Ok(2 << 20));
        assert_eq!(parse_rate("4096"), Ok(4096));
        assert_eq!(parse_rate("1g"), Ok(1 << 30));
        assert!(parse_rate("10").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5X").is_err());
        assert!(parse_rate("-1M").is_err());
    }
}

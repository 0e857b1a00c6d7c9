//! The delete guard: an export plan that would delete too much of the remote site is refused
//! before anything changes. It catches the "build failed, site wiped" accident (an empty
//! output directory mirrored with `delete = true`) and plain mistakes in `local` or `exclude`.

use std::fmt;
use std::str::FromStr;

use crate::plan::{Direction, Op, Plan, Reason};

/// Deletions allowed by default: up to this many are never refused …
pub const DEFAULT_FREE_DELETES: usize = 10;
/// … and beyond that, up to this share of the remote files (per cent).
pub const DEFAULT_MAX_PERCENT: u32 = 50;

/// How many remote files one export may delete (`max_delete` / `--max-delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxDelete {
    /// More than [`DEFAULT_MAX_PERCENT`] % of the remote files, when more than
    /// [`DEFAULT_FREE_DELETES`] would go, is refused.
    #[default]
    Default,
    /// At most this many files.
    Count(usize),
    /// At most this share of the remote files, in per cent (0–100).
    Percent(u32),
}

impl FromStr for MaxDelete {
    type Err = String;

    /// `N` (a count) or `P%` (a share of the remote files, 0–100).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("'{s}' is not a count or a percentage (use e.g. 20 or 30%)");
        match s.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u32>() {
                Ok(p) if p <= 100 => Ok(Self::Percent(p)),
                Ok(_) => Err(format!("'{s}': a percentage is at most 100%")),
                Err(_) => Err(bad()),
            },
            None => s.parse().map(Self::Count).map_err(|_| bad()),
        }
    }
}

impl fmt::Display for MaxDelete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => write!(
                f,
                "the default ({DEFAULT_MAX_PERCENT}% of the remote files when over {DEFAULT_FREE_DELETES})"
            ),
            Self::Count(n) => write!(f, "{n} files"),
            Self::Percent(p) => write!(f, "{p}% of the remote files"),
        }
    }
}

/// What the guard checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardOptions {
    /// The limit on deletions.
    pub max_delete: MaxDelete,
    /// Let an export from an empty local root delete (`--allow-empty`).
    pub allow_empty: bool,
}

/// The numbers of a plan the guard looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteCounts {
    /// Files the plan deletes.
    pub deletes: usize,
    /// Files on the remote side (as listed for the plan).
    pub remote_files: usize,
    /// Files on the local side.
    pub local_files: usize,
}

impl DeleteCounts {
    /// Counts from an export plan: skips and replacing uploads exist on both sides, new
    /// uploads only locally, deletes only remotely.
    pub fn of(plan: &Plan) -> Self {
        let mut c = Self {
            deletes: 0,
            remote_files: 0,
            local_files: 0,
        };
        for a in &plan.actions {
            match (a.op, a.reason) {
                (Op::Skip, _) => {
                    c.remote_files += 1;
                    c.local_files += 1;
                }
                (Op::Upload, Reason::New) => c.local_files += 1,
                (Op::Upload, _) => {
                    c.remote_files += 1;
                    c.local_files += 1;
                }
                (Op::Delete, _) => {
                    c.deletes += 1;
                    c.remote_files += 1;
                }
                _ => {}
            }
        }
        c
    }
}

/// Why the guard refused a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The local root holds no file, and the plan would delete remote files.
    EmptySource(DeleteCounts),
    /// The plan deletes more than the limit allows.
    TooManyDeletes {
        /// The plan's numbers.
        counts: DeleteCounts,
        /// The limit it broke.
        limit: MaxDelete,
    },
}

impl Refusal {
    /// The flag that lets the run go on anyway.
    pub fn override_flag(&self) -> &'static str {
        match self {
            Self::EmptySource(_) => "--allow-empty",
            Self::TooManyDeletes { .. } => "--max-delete 100%",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptySource(c) => write!(
                f,
                "the local directory has no files, and the export would delete all {} remote files; nothing was changed",
                c.remote_files
            ),
            Self::TooManyDeletes { counts: c, limit } => write!(
                f,
                "the export would delete {} of {} remote files ({}%), more than the limit of {limit}; nothing was changed",
                c.deletes,
                c.remote_files,
                percent(c.deletes, c.remote_files)
            ),
        }
    }
}

fn percent(part: usize, whole: usize) -> usize {
    part.saturating_mul(100).checked_div(whole).unwrap_or(0)
}

/// Checks an export plan before it runs. Import plans (which delete local files only with
/// `--delete`) and plans that delete nothing always pass.
pub fn check(plan: &Plan, opts: &GuardOptions) -> Result<DeleteCounts, Refusal> {
    let c = DeleteCounts::of(plan);
    if plan.direction != Direction::Export || c.deletes == 0 {
        return Ok(c);
    }
    if c.local_files == 0 && !opts.allow_empty {
        return Err(Refusal::EmptySource(c));
    }
    let too_many = match opts.max_delete {
        MaxDelete::Default => {
            c.deletes > DEFAULT_FREE_DELETES
                && c.deletes * 100 > c.remote_files * DEFAULT_MAX_PERCENT as usize
        }
        MaxDelete::Count(n) => c.deletes > n,
        MaxDelete::Percent(p) => c.deletes * 100 > c.remote_files * p as usize,
    };
    if too_many {
        return Err(Refusal::TooManyDeletes {
            counts: c,
            limit: opts.max_delete,
        });
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Action;

    fn plan(skip: usize, new: usize, delete: usize) -> Plan {
        let act = |op, reason, i| Action {
            op,
            path: format!("f{i}"),
            size: 0,
            reason,
            source_mtime: None,
        };
        let mut actions = Vec::new();
        actions.extend((0..skip).map(|i| act(Op::Skip, Reason::Unchanged, i)));
        actions.extend((0..new).map(|i| act(Op::Upload, Reason::New, i)));
        actions.extend((0..delete).map(|i| act(Op::Delete, Reason::Extra, i)));
        Plan {
            direction: Direction::Export,
            actions,
            local_problems: vec![],
            remote_problems: vec![],
            journal_updates: vec![],
            notes: vec![],
            stale_temps: vec![],
        }
    }

    #[test]
    fn parses_counts_and_percentages() {
        assert_eq!("20".parse(), Ok(MaxDelete::Count(20)));
        assert_eq!("30%".parse(), Ok(MaxDelete::Percent(30)));
        assert_eq!("100%".parse(), Ok(MaxDelete::Percent(100)));
        for bad in ["", "x", "101%", "-1", "5.5%"] {
            assert!(bad.parse::<MaxDelete>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn default_limit_is_half_when_over_ten() {
        let o = GuardOptions::default();
        // 10 deletions always pass, even of 10 files … as long as something stays locally.
        assert!(check(&plan(0, 1, 10), &o).is_ok());
        // 12 of 20 (60 %) is refused; 10 of 20 passes; 11 of 30 passes.
        assert!(matches!(
            check(&plan(8, 0, 12), &o),
            Err(Refusal::TooManyDeletes { .. })
        ));
        assert!(check(&plan(10, 0, 10), &o).is_ok());
        assert!(check(&plan(19, 0, 11), &o).is_ok());
    }

    #[test]
    fn empty_source_never_deletes_unless_allowed() {
        let o = GuardOptions::default();
        let e = check(&plan(0, 0, 3), &o).unwrap_err();
        assert!(matches!(e, Refusal::EmptySource(_)), "{e}");
        assert_eq!(e.override_flag(), "--allow-empty");
        let allowed = GuardOptions {
            allow_empty: true,
            max_delete: MaxDelete::Percent(100),
        };
        assert!(check(&plan(0, 0, 3), &allowed).is_ok());
        // Nothing to delete: an empty source is fine.
        assert!(check(&plan(0, 0, 0), &o).is_ok());
    }

    #[test]
    fn explicit_limits() {
        let count = GuardOptions {
            max_delete: MaxDelete::Count(2),
            allow_empty: false,
        };
        assert!(check(&plan(5, 0, 2), &count).is_ok());
        let e = check(&plan(5, 0, 3), &count).unwrap_err();
        assert!(e.to_string().contains("delete 3 of 8 remote files"), "{e}");
        let all = GuardOptions {
            max_delete: MaxDelete::Percent(100),
            allow_empty: false,
        };
        assert!(check(&plan(1, 0, 50), &all).is_ok());
    }
}

//! The mirror engine of siteport: scan both sides, plan, execute in parallel, journal.
//!
//! - [`Endpoint`]: a site's server in the engine's own types (host, port, [`Protocol`] with
//!   its settings such as [`FtpSettings`], remote root, [`Login`]). [`connect_factory`] turns
//!   it into a [`RemoteFactory`] and [`test_login`] tries a login, both through the adapter of
//!   the protocol (FTP/FTPS in `ftp.rs`, over `siteport-ftp`; SFTP in `sftp.rs`, over
//!   `siteport-sftp`; features `ftp` and `sftp`, both on by default).
//!   Callers never see a transport's own types or errors.
//! - [`Remote`] / [`RemoteFactory`]: the seam to a transport (an adapter, or a local
//!   directory in [`LocalDirRemote`]). Each worker owns one connection and reuses it.
//! - [`scan_local`] and the engine's parallel remote listing produce [`Tree`]s;
//!   [`plan_export`] / [`plan_import`] (pure) turn them and the [`Journal`] into a [`Plan`].
//! - [`Engine`] executes a plan: directories first, transfers over N connections with
//!   retries and reconnects, deletes last; every completed file is journaled at once. Its
//!   `engine/` folder: `mod.rs` (options, phases), `scan.rs` (remote listing), `scheduler.rs`
//!   (queue, worker pool, connection count, backoff, `421`), `transfer.rs` (remote actions,
//!   upload), `download.rs` (download finished into place), `local.rs` (local directory
//!   operations). Every local file is read and written through `local_fs.rs`: opened from a
//!   handle on the site root, no link followed at any component, and a file read must be the
//!   one the scan saw (device, inode) — the transports get the open file, never a path.
//! - [`DeployState`] (`state.rs`): the deploy state document kept on the server
//!   (`<remote>/.siteport/state.json`, or where the site's `state_dir` puts it:
//!   [`locate_state_dir`], `state_dir.rs`), so any machine knows what the last export left there;
//!   the engine reads it before planning, writes it during and after an export
//!   (`engine/deploy.rs`) and mirrors it into the [`Journal`], whose stat cache
//!   ([`LocalStat`]) tells which local files are untouched. [`Baseline`] is what the planner
//!   knows of the last deploy.
//! - Around a run: the site lock ([`try_lock`], `lock.rs`: `MKD <state dir>/lock`), the
//!   delete guard ([`check_deletes`], `guard.rs`) applied to a plan before it runs, and
//!   `export --verify` ([`verify_uploads`], `verify.rs`).
//! - [`Report`] says what happened; [`Progress`] reports it as it happens; [`Error`] carries
//!   an [`ErrorKind`] the CLI maps to exit codes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connect;
mod digest;
mod endpoint;
mod engine;
mod error;
#[cfg(feature = "ftp")]
mod ftp;
mod guard;
#[cfg(feature = "sftp")]
mod host_key;
mod journal;
mod journal_files;
mod local_fs;
mod local_remote;
mod lock;
mod path;
mod plan;
mod remote;
mod report;
mod reuse;
#[cfg(feature = "sftp")]
mod sftp;
mod state;
mod state_dir;
mod tree;
mod verify;

pub use connect::{check_ca_file, is_valid_fingerprint, set_bandwidth_limit};
#[cfg(any(feature = "ftp", feature = "sftp"))]
pub use connect::{connect_factory, test_login};
pub use digest::hash_file_with;
pub use endpoint::{Endpoint, FtpSettings, Login, Protocol, SftpSettings, TlsMode};
pub use engine::{Engine, RetryPolicy, Switch, SyncOptions};
pub use error::{Error, ErrorKind, Result};
pub use guard::{DeleteCounts, GuardOptions, MaxDelete, Refusal, check as check_deletes};
#[cfg(feature = "sftp")]
pub use host_key::{HostKey, HostKeyVerdict, host_key_verdict, offered_host_key};
pub use journal::{Journal, JournalRecord, LocalStat, from_ns, hash_file, to_ns};
pub use journal_files::{adopt_journal, journal_file_name, sweep_journal_locks};
pub use local_fs::FileId;
pub use local_remote::{LocalDirRemote, LocalDirRemoteFactory};
pub use lock::{
    Attempt, DEFAULT_LOCK_TIMEOUT, Holder, LockOwner, SiteLock, break_lock, lock_with_wait,
    parse_duration, read_lock, rfc3339, try_lock,
};
pub use path::{check_name, check_rel_path, check_remote_path};
pub use plan::{
    Action, Baseline, Direction, Op, Plan, PlanOptions, PlanSummary, Reason, plan_export,
    plan_export_with, plan_import,
};
pub use remote::{
    ByteMeter, Capabilities, EntryKind, HashAlg, LocalFile, ReadObserver, Remote, RemoteEntry,
    RemoteFactory, Staged, list_one_by_one,
};
pub use report::{Counts, FileOutcome, NoProgress, Progress, Report, Status};
pub use reuse::ReusingFactory;
pub use state::{
    DEFAULT_STATE_DIR, DeployInfo, DeployState, STATE_FILE, StateRecord, git_commit,
    read_deploy_state, user_at_host,
};
pub use state_dir::{check_state_dir_setting, in_web_root, locate_state_dir};
pub use tree::{Excludes, ProblemKind, ScanProblem, Tree, TreeEntry, scan_local};
pub use verify::{Mismatch, Problem, Verification, verify_uploads};

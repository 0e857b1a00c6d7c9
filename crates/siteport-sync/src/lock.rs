//! The site lock: one `export` or `import` at a time per site, across machines.
//!
//! The lock is the directory `<state dir>/lock` on the server. Creating a directory is atomic
//! on every FTP server (and on a local disk): of several runs racing to `MKD` it, exactly one
//! succeeds ([`Remote::mkdir_new`]). The winner then writes `owner.json` into it (who, where,
//! since when, which version, and a random token), so that a second run can name the holder,
//! and so that a release never frees a lock that was taken over by someone else meanwhile.
//!
//! A lock whose holder started more than the site's `lock_timeout` ago is taken over (the
//! caller warns); `siteport unlock` frees one at once ([`break_lock`]).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::remote::{EntryKind, Remote};

/// How old a lock may get before another run takes it over (the site key `lock_timeout`).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(3600);

/// The lock directory's name inside the state dir.
pub const LOCK_DIR: &str = "lock";

/// The owner file's name inside the lock directory.
pub const OWNER_FILE: &str = "owner.json";

/// An owner file is a few hundred bytes; anything larger is not ours.
const OWNER_MAX: usize = 64 * 1024;

/// Who holds (or wants) a site lock: the contents of `owner.json`. Nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    /// `user@host` of the run.
    pub user_host: String,
    /// Its process id.
    pub pid: u32,
    /// When it took the lock, seconds since the Unix epoch (its own clock).
    pub started: u64,
    /// The siteport version it runs.
    pub version: String,
    /// A random token: a release frees the lock only while the token is still the caller's.
    pub token: String,
}

impl LockOwner {
    /// The owner record of this process, started now, for siteport `version`.
    pub fn current(version: &str) -> Self {
        let now = SystemTime::now();
        let started = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let user_host = format!("{}@{}", user_name(), host_name());
        Self {
            token: random_token(&user_host, now),
            user_host,
            pid: std::process::id(),
            started,
            version: version.to_string(),
        }
    }

    /// When the holder took the lock.
    pub fn started_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.started)
    }

    /// The start time in UTC, RFC 3339 (`2026-12-07T06:30:00Z`).
    pub fn since(&self) -> String {
        rfc3339(self.started_at())
    }
}

impl fmt::Display for LockOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pid {}, siteport {}) since {}",
            self.user_host,
            self.pid,
            self.version,
            self.since()
        )
    }
}

/// A lock found on the server: its owner file, when it could be read, and the lock
/// directory's listed time (the only age there is when the holder died before writing its
/// owner file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The owner file; `None` when it is missing or unreadable.
    pub owner: Option<LockOwner>,
    /// The lock directory's modification time as the server lists it.
    pub dir_mtime: Option<SystemTime>,
}

impl Holder {
    /// When the lock was taken, as well as it is known.
    pub fn started_at(&self) -> Option<SystemTime> {
        self.owner
            .as_ref()
            .map(LockOwner::started_at)
            .or(self.dir_mtime)
    }

    /// How long it has been held (`None`: unknown, or the holder's clock is ahead).
    pub fn age(&self) -> Option<Duration> {
        self.started_at()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.owner, self.dir_mtime) {
            (Some(o), _) => write!(f, "{o}"),
            (None, Some(t)) => write!(
                f,
                "an unknown run (no owner file in the lock) since {}",
                rfc3339(t)
            ),
            (None, None) => f.write_str("an unknown run (no owner file in the lock)"),
        }
    }
}

/// A lock this process holds. Free it with [`release`](SiteLock::release).
#[derive(Debug, Clone)]
pub struct SiteLock {
    state_dir: String,
    owner: LockOwner,
}

impl SiteLock {
    /// The lock `owner` holds if a [`try_lock`] with it succeeded. For a caller whose attempt
    /// was cut short (a signal): its [`release`](SiteLock::release) frees the lock only if the
    /// owner file carries `owner`'s token, so it is safe whether or not the lock was taken.
    pub fn for_owner(state_dir: &str, owner: LockOwner) -> Self {
        Self {
            state_dir: state_dir.to_string(),
            owner,
        }
    }

    /// The record written into the lock.
    pub fn owner(&self) -> &LockOwner {
        &self.owner
    }

    /// The state directory the lock is in.
    pub fn state_dir(&self) -> &str {
        &self.state_dir
    }

    /// Frees the lock: deletes the owner file and removes the lock directory, but only while
    /// the owner file still carries this lock's token. `Ok(false)`: the lock was no longer
    /// ours (taken over after `lock_timeout`, or freed with `siteport unlock`) and was left
    /// alone.
    pub async fn release(&self, remote: &mut dyn Remote) -> Result<bool> {
        check_state_dir(&self.state_dir)?;
        // The owner file alone says whose lock it is: no listing of the state dir first (that
        // is for the lock directory's time, which only a holder without an owner file needs).
        // A lock directory that is gone has no owner file either.
        match read_owner_strict(remote, &self.state_dir).await? {
            Some(o) if o.token == self.owner.token => {
                remove_lock(remote, &self.state_dir).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// What [`try_lock`] found.
#[derive(Debug)]
pub enum Attempt {
    /// The lock is ours.
    Acquired(SiteLock),
    /// The lock was older than the timeout and is now ours; `previous` held it.
    TakenOver {
        /// The lock, ours now.
        lock: SiteLock,
        /// Who held it before.
        previous: Holder,
    },
    /// Another run holds it.
    Held(Holder),
}

fn lock_dir(state_dir: &str) -> String {
    format!("{}/{LOCK_DIR}", state_dir.trim_end_matches('/'))
}

fn owner_path(state_dir: &str) -> String {
    format!("{}/{OWNER_FILE}", lock_dir(state_dir))
}

/// Tries once to take the site lock: creates the state dir (and the remote root) when
/// missing, then `MKD <state dir>/lock`. When the lock exists and its holder started more
/// than `timeout` ago, it is removed and taken again (`Attempt::TakenOver`).
///
/// `state_dir` is relative to the remote root (default [`crate::DEFAULT_STATE_DIR`]), or
/// absolute on the server when it is outside the web root ([`crate::locate_state_dir`]).
pub async fn try_lock(
    remote: &mut dyn Remote,
    state_dir: &str,
    owner: &LockOwner,
    timeout: Duration,
) -> Result<Attempt> {
    check_state_dir(state_dir)?;
    // The remote root and the state dir's chain in one go (one round trip over FTP).
    let mut chain = vec![String::new()];
    chain.extend(crate::state::dir_chain(state_dir));
    remote.mkdirs(&chain).await?;
    if let Some(lock) = create(remote, state_dir, owner).await? {
        return Ok(Attempt::Acquired(lock));
    }
    let Some(holder) = read_lock(remote, state_dir).await? else {
        // Freed between our MKD and the look: try once more.
        return Ok(match create(remote, state_dir, owner).await? {
            Some(lock) => Attempt::Acquired(lock),
            None => Attempt::Held(read_lock(remote, state_dir).await?.unwrap_or(Holder {
                owner: None,
                dir_mtime: None,
            })),
        });
    };
    if holder.age().is_none_or(|a| a <= timeout) {
        return Ok(Attempt::Held(holder));
    }
    // Stale. Take it over only if it is still the lock we judged stale (a racing run may
    // have taken it over already).
    if read_lock(remote, state_dir).await?.map(|h| h.owner) != Some(holder.owner.clone()) {
        return Ok(Attempt::Held(
            read_lock(remote, state_dir).await?.unwrap_or(holder),
        ));
    }
    remove_lock(remote, state_dir).await?;
    Ok(match create(remote, state_dir, owner).await? {
        Some(lock) => Attempt::TakenOver {
            lock,
            previous: holder,
        },
        None => Attempt::Held(read_lock(remote, state_dir).await?.unwrap_or(holder)),
    })
}

/// [`try_lock`] again every `poll` until the lock is ours or `wait` has passed (`wait` zero:
/// one try). `on_wait` is called once, with the holder, when the first try finds the lock
/// held and there is time to wait.
pub async fn lock_with_wait(
    remote: &mut dyn Remote,
    state_dir: &str,
    owner: &LockOwner,
    timeout: Duration,
    wait: Duration,
    poll: Duration,
    on_wait: &mut (dyn FnMut(&Holder) + Send),
) -> Result<Attempt> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut told = false;
    loop {
        let attempt = try_lock(remote, state_dir, owner, timeout).await?;
        let Attempt::Held(holder) = &attempt else {
            return Ok(attempt);
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(attempt);
        }
        if !told {
            on_wait(holder);
            told = true;
        }
        tokio::time::sleep(poll.min(deadline - now)).await;
    }
}

/// Creates the lock directory; `None` when it exists already.
async fn create(
    remote: &mut dyn Remote,
    state_dir: &str,
    owner: &LockOwner,
) -> Result<Option<SiteLock>> {
    if !remote.mkdir_new(&lock_dir(state_dir)).await? {
        return Ok(None);
    }
    let json = serde_json::to_vec_pretty(owner)
        .map_err(|e| Error::new(ErrorKind::Transfer, "site lock", e.to_string()))?;
    remote
        .put_atomic_contents(&json, &owner_path(state_dir), None)
        .await?;
    Ok(Some(SiteLock {
        state_dir: state_dir.to_string(),
        owner: owner.clone(),
    }))
}

/// Reads the lock of the site: `None` when it is not locked.
pub async fn read_lock(remote: &mut dyn Remote, state_dir: &str) -> Result<Option<Holder>> {
    check_state_dir(state_dir)?;
    let (parent, _) = lock_dir(state_dir)
        .rsplit_once('/')
        .map(|(p, n)| (p.to_string(), n.to_string()))
        .unwrap_or_default();
    let listed = match remote.list_dir(&parent).await {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(dir) = listed
        .iter()
        .find(|e| e.name == LOCK_DIR && e.kind == EntryKind::Dir)
    else {
        return Ok(None);
    };
    let owner = read_owner(remote, state_dir).await;
    Ok(Some(Holder {
        owner,
        dir_mtime: dir.mtime,
    }))
}

/// The owner file, or `None` when it is missing, too large or not an owner record.
async fn read_owner(remote: &mut dyn Remote, state_dir: &str) -> Option<LockOwner> {
    let path = owner_path(state_dir);
    let bytes = match remote.get_contents(&path, OWNER_MAX).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            let b = get_via_temp(remote, &path).await.ok()?;
            (b.len() <= OWNER_MAX).then_some(b)?
        }
        Err(_) => return None,
    };
    serde_json::from_slice(&bytes).ok()
}

/// The owner file for a release: `None` when it is missing (or refused, or not an owner
/// record); a failure of the connection is an error (the caller may try again), not a
/// lock that is someone else's.
async fn read_owner_strict(remote: &mut dyn Remote, state_dir: &str) -> Result<Option<LockOwner>> {
    let path = owner_path(state_dir);
    let got = match remote.get_contents(&path, OWNER_MAX).await {
        Ok(Some(b)) => Ok(b),
        Ok(None) => get_via_temp(remote, &path).await,
        Err(e) => Err(e),
    };
    match got {
        Ok(b) if b.len() <= OWNER_MAX => Ok(serde_json::from_slice(&b).ok()),
        Ok(_) => Ok(None),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Permission) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Downloads `path` through an unnamed temporary file (for transports that cannot download
/// into memory): nothing to clean up, nothing another user can plant a link at.
pub(crate) async fn get_via_temp(remote: &mut dyn Remote, path: &str) -> Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let tmp = std::env::temp_dir();
    let io = |e| crate::error::Error::local_io("temporary file", &tmp, e);
    let mut file = tempfile::tempfile().map_err(io)?;
    let writer = file.try_clone().map_err(io)?;
    remote
        .get(
            path,
            crate::remote::LocalFile {
                file: writer,
                shown: tmp.clone(),
                meter: None,
            },
        )
        .await?;
    let mut b = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut b))
        .map_err(io)?;
    Ok(b)
}

/// Deletes the owner file (if any) and removes the lock directory.
async fn remove_lock(remote: &mut dyn Remote, state_dir: &str) -> Result<()> {
    // A missing owner file is no error (some servers say "permission" for one): the RMD
    // tells the truth. Both in one round trip over FTP.
    remote
        .remove_file_and_dir(&owner_path(state_dir), &lock_dir(state_dir))
        .await
}

/// `siteport unlock`: frees the site lock whoever holds it. Returns the holder it freed, or
/// `None` when the site was not locked.
pub async fn break_lock(remote: &mut dyn Remote, state_dir: &str) -> Result<Option<Holder>> {
    let holder = read_lock(remote, state_dir).await?;
    if holder.is_some() {
        remove_lock(remote, state_dir).await?;
    }
    Ok(holder)
}

/// A state dir is relative to the remote root, or absolute on the server (outside the web
/// root); no `..`, no empty name either way.
fn check_state_dir(state_dir: &str) -> Result<()> {
    crate::path::check_remote_path(state_dir).map_err(|why| {
        Error::new(
            ErrorKind::Config,
            "site lock",
            format!("state dir '{}' is refused: {why}", state_dir.escape_debug()),
        )
    })
}

fn user_name() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn host_name() -> String {
    let from_file = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| {
            ["HOSTNAME", "COMPUTERNAME"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        })
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// A token unique to this process and moment (it only tells locks apart; it guards nothing
/// secret): BLAKE3 of the time, pid, host, an address on the stack and a counter.
fn random_token(user_host: &str, now: SystemTime) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(user_host.as_bytes());
    let local = 0u8;
    h.update(&(std::ptr::addr_of!(local) as usize).to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(&std::time::Instant::now().elapsed().as_nanos().to_le_bytes());
    h.finalize().to_hex()[..32].to_string()
}

/// `t` in UTC as RFC 3339, whole seconds.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let dt = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    match dt.and_then(|d| {
        d.format(&time::format_description::well_known::Rfc3339)
            .ok()
    }) {
        Some(s) => s,
        None => format!("{secs} s after the epoch"),
    }
}

/// Parses a duration as the CLI and config take it: `90s`, `2m`, `1h`, `1d`, or bare seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (use e.g. 90s, 2m, 1h)"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}' is not a duration (use e.g. 90s, 2m, 1h)")),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{s}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_remote::LocalDirRemoteFactory;
    use crate::remote::RemoteFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        for bad in ["", "m", "2x", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn state_dir_is_relative_or_absolute_without_climbing() {
        for bad in [
            "",
            "/",
            "../up",
            "a/../b",
            "/srv/../etc",
            "a//b",
            "//x",
            "a\\b",
        ] {
            assert!(check_state_dir(bad).is_err(), "{bad:?} was accepted");
        }
        for good in [".siteport", "meta/.siteport", "/srv/siteport-state"] {
            assert!(check_state_dir(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn tokens_differ() {
        let a = LockOwner::current("1");
        let b = LockOwner::current("1");
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 32);
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_release_only_by_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let f = LocalDirRemoteFactory::new(dir.path());
        let mut r = f.connect().await.unwrap();
        let a = LockOwner::current("1");
        let b = LockOwner::current("1");
        let hour = DEFAULT_LOCK_TIMEOUT;
        let Attempt::Acquired(lock_a) = try_lock(r.as_mut(), ".siteport", &a, hour).await.unwrap()
        else {
            panic!("first lock not acquired")
        };
        assert!(dir.path().join(".siteport/lock/owner.json").is_file());
        match try_lock(r.as_mut(), ".siteport", &b, hour).await.unwrap() {
            Attempt::Held(h) => assert_eq!(h.owner.as_ref(), Some(&a)),
            other => panic!("second lock: {other:?}"),
        }
        // Taken over after the timeout (zero here): the old holder's release leaves it alone.
        let Attempt::TakenOver {
            lock: lock_b,
            previous,
        } = try_lock(r.as_mut(), ".siteport", &b, Duration::ZERO)
            .await
            .unwrap()
        else {
            panic!("stale lock not taken over")
        };
        assert_eq!(previous.owner, Some(a.clone()));
        assert!(!lock_a.release(r.as_mut()).await.unwrap());
        assert!(lock_b.release(r.as_mut()).await.unwrap());
        assert!(!dir.path().join(".siteport/lock").exists());
        assert!(read_lock(r.as_mut(), ".siteport").await.unwrap().is_none());
        // A lock without an owner file (holder killed between MKD and STOR) is named as such.
        std::fs::create_dir(dir.path().join(".siteport/lock")).unwrap();
        let h = read_lock(r.as_mut(), ".siteport").await.unwrap().unwrap();
        assert!(h.to_string().contains("unknown run"), "{h}");
        assert_eq!(break_lock(r.as_mut(), ".siteport").await.unwrap(), Some(h));
        assert!(!dir.path().join(".siteport/lock").exists());
    }
}

//! The SFTP adapter: [`SftpRemote`], the engine's [`Remote`] over one `siteport-sftp`
//! connection, and [`SftpRemoteFactory`], which opens one per worker. It alone turns an
//! [`Endpoint`] into `siteport-sftp`'s `ConnectOptions` and SFTP errors into the engine's
//! kinds (an untrusted host key is [`ErrorKind::HostKey`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use siteport_sftp::{
    Auth, ConnectOptions, HostKeyPolicy, PutOutcome, RenameMethod, SftpConnection, SftpError,
    SftpErrorKind,
};

use crate::endpoint::{Endpoint, SftpSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::remote::{
    Capabilities, EntryKind, LocalFile, ReadObserver, Remote, RemoteEntry, RemoteFactory, Staged,
};

/// Maps an SFTP error to the engine's kinds. `connecting`: an unusable key or agent is a
/// setup problem (`Config`), not a failed transfer.
pub(crate) fn map_sftp_error(e: SftpError, connecting: bool) -> Error {
    let kind = match e.kind() {
        SftpErrorKind::Login => ErrorKind::Login,
        SftpErrorKind::HostKeyUnknown | SftpErrorKind::HostKeyChanged => ErrorKind::HostKey,
        SftpErrorKind::NotFound => ErrorKind::NotFound,
        SftpErrorKind::Permission => ErrorKind::Permission,
        SftpErrorKind::Network | SftpErrorKind::Transient => ErrorKind::Network,
        SftpErrorKind::LocalIo => ErrorKind::LocalIo,
        SftpErrorKind::Invalid if connecting => ErrorKind::Config,
        _ => ErrorKind::Transfer,
    };
    let place = format!("sftp {}", e.server());
    let detail = match e.op() {
        Some(op) => format!("{op}: {}", e.message()),
        None => e.message().to_string(),
    };
    // As for FTP: a login that reached the server and was cut is retried on the engine's
    // reconnect budget, not on the job's tries.
    let reached = connecting && e.reached_server();
    let mut out = Error::new(kind, place, detail)
        .retryable(e.retryable() || kind == ErrorKind::Network)
        .reached_server(reached);
    if let Some(h) = e.hint() {
        out = out.with_hint(h);
    } else if kind == ErrorKind::Config {
        out = out.with_hint("check the SSH key and its passphrase, or SSH_AUTH_SOCK for the agent");
    }
    out.with_source(e)
}

/// How the host key is checked: the pin, else the known_hosts files; `insecure` overrides.
pub(crate) fn host_key_policy(settings: &SftpSettings) -> HostKeyPolicy {
    if settings.insecure {
        return HostKeyPolicy::Insecure;
    }
    if let Some(pin) = &settings.host_key {
        return HostKeyPolicy::Pin(pin.clone());
    }
    let mut files = Vec::new();
    if !settings.no_user_known_hosts
        && let HostKeyPolicy::KnownHosts(user) = HostKeyPolicy::user_known_hosts()
    {
        files.extend(user);
    }
    files.extend(settings.known_hosts.iter().cloned());
    HostKeyPolicy::KnownHosts(files)
}

/// `siteport-sftp`'s options for `endpoint`: a key when the login has one, else the agent
/// when the password is empty, else the password (secrets move between `SecretString`s).
fn connect_options(endpoint: &Endpoint, settings: &SftpSettings) -> ConnectOptions {
    use secrecy::ExposeSecret;
    let login = &endpoint.login;
    let auth = match &login.ssh_key {
        Some(key) => Auth::Key {
            pem: key.clone(),
            passphrase: login.ssh_key_passphrase.clone(),
        },
        None if login.password.expose_secret().is_empty() => Auth::Agent,
        None => Auth::Password(login.password.clone()),
    };
    let mut o = ConnectOptions::new(
        endpoint.host.clone(),
        login.username.clone(),
        auth,
        host_key_policy(settings),
    );
    o.port = endpoint.port;
    o.timeout = endpoint.timeout;
    if let Some(m) = settings.file_mode {
        o.file_mode = m;
    }
    if let Some(m) = settings.dir_mode {
        o.dir_mode = m;
    }
    o
}

/// [`crate::test_login`] over SFTP: connect, check the host key, authenticate, disconnect.
pub(crate) async fn test_login(endpoint: &Endpoint, settings: &SftpSettings) -> Result<()> {
    let conn = SftpConnection::connect(&connect_options(endpoint, settings))
        .await
        .map_err(|e| map_sftp_error(e, true))?;
    let _ = conn.quit().await;
    Ok(())
}

/// One logged-in SFTP connection, rooted at the site's remote directory.
pub(crate) struct SftpRemote {
    /// Shared with the other remotes the factory handed out on the same SSH session.
    conn: Option<Arc<SftpConnection>>,
    root: String,
    server: String,
    /// Uploads that replaced a file by remove + rename, shared with the factory.
    replaced: Arc<AtomicUsize>,
}

impl std::fmt::Debug for SftpRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpRemote")
            .field("server", &self.server)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl SftpRemote {
    /// The server path of `rel`: under the site's root, or unchanged when absolute (the
    /// deploy state dir outside the web root). A hostile component is refused here too.
    fn full(&self, rel: &str) -> Result<String> {
        crate::path::server_path(&self.root, rel)
            .map_err(|why| Error::unsafe_name(format!("sftp {}: {rel:?}", self.server), why))
    }

    /// The bytes sent, counting a non-atomic replacement for the run's report.
    fn sent(&self, o: PutOutcome) -> u64 {
        if o.rename == RenameMethod::RemoveThenRename {
            self.replaced.fetch_add(1, Ordering::Relaxed);
        }
        o.bytes
    }

    fn conn(&self) -> Result<&SftpConnection> {
        match self.conn.as_ref() {
            Some(c) if c.is_open() => Ok(c),
            _ => Err(Error::new(
                ErrorKind::Network,
                format!("sftp {}", self.server),
                "the connection is closed",
            )),
        }
    }
}

#[async_trait]
impl Remote for SftpRemote {
    fn describe(&self) -> String {
        format!(
            "sftp://{}/{}",
            self.server,
            self.root.trim_start_matches('/')
        )
    }

    /// SFTP lists exact UTC times and SETSTAT sets them. No server-side hash: OpenSSH offers
    /// no `check-file` extension, so unproven equal-size files are sent.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            precise_mtime: true,
            set_mtime: true,
            hash: None,
        }
    }

    async fn list_dir(&mut self, path: &str) -> Result<Vec<RemoteEntry>> {
        let p = self.full(path)?;
        let entries = self
            .conn()?
            .list_dir(&p)
            .await
            .map_err(|e| map_sftp_error(e, false))?;
        Ok(entries
            .into_iter()
            .map(|e| RemoteEntry {
                kind: match e.kind {
                    siteport_sftp::EntryKind::File => EntryKind::File,
                    siteport_sftp::EntryKind::Dir => EntryKind::Dir,
                    siteport_sftp::EntryKind::Symlink => EntryKind::Symlink,
                    siteport_sftp::EntryKind::Other => EntryKind::Other,
                },
                name: e.name,
                size: e.size,
                mtime: e.mtime,
                mtime_precise: e.mtime.is_some(),
            })
            .collect())
    }

    async fn list_dirs(&mut self, paths: &[String]) -> Vec<Result<Vec<RemoteEntry>>> {
        crate::remote::list_one_by_one(self, paths).await
    }

    async fn put_atomic(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<u64> {
        let p = self.full(path)?;
        let mut observe = observe;
        let obs = observe
            .as_mut()
            .map(|o| o.as_mut() as &mut (dyn FnMut(&[u8]) + Send));
        let count = local.counter();
        self.conn()?
            .put_atomic_file(local.file, &local.shown, &p, mtime, obs, Some(&count))
            .await
            .map(|o| self.sent(o))
            .map_err(|e| map_sftp_error(e, false))
    }

    async fn put_atomic_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64> {
        let p = self.full(path)?;
        self.conn()?
            .put_atomic_bytes(contents, &p, mtime)
            .await
            .map(|o| self.sent(o))
            .map_err(|e| map_sftp_error(e, false))
    }

    async fn put_staged(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<(u64, Staged)> {
        let p = self.full(path)?;
        let mut observe = observe;
        let obs = observe
            .as_mut()
            .map(|o| o.as_mut() as &mut (dyn FnMut(&[u8]) + Send));
        let count = local.counter();
        let (n, tmp) = self
            .conn()?
            .put_staged_file(local.file, &local.shown, &p, mtime, obs, Some(&count))
            .await
            .map_err(|e| map_sftp_error(e, false))?;
        Ok((n, Staged::beside(path, &tmp)))
    }

    async fn put_staged_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(u64, Staged)> {
        let p = self.full(path)?;
        let (n, tmp) = self
            .conn()?
            .put_staged_bytes(contents, &p, mtime)
            .await
            .map_err(|e| map_sftp_error(e, false))?;
        Ok((n, Staged::beside(path, &tmp)))
    }

    /// The renames all sent on the session before the first answer is awaited
    /// (`SftpConnection::rename_many`).
    async fn publish(&mut self, batch: &[Staged]) -> Vec<Result<()>> {
        let (mut out, names) = Staged::renames(batch, |p| self.full(p));
        let pairs: Vec<(&str, &str)> = names
            .iter()
            .map(|(_, f, t)| (f.as_str(), t.as_str()))
            .collect();
        let results = match self.conn() {
            Ok(c) => c.rename_many(&pairs).await,
            Err(e) => {
                for (i, ..) in &names {
                    out[*i] = Some(Err(e.duplicate()));
                }
                Vec::new()
            }
        };
        for ((i, ..), r) in names.iter().zip(results) {
            if let Ok(RenameMethod::RemoveThenRename) = r {
                self.replaced.fetch_add(1, Ordering::Relaxed);
            }
            out[*i] = Some(r.map(drop).map_err(|e| map_sftp_error(e, false)));
        }
        Staged::settled(out, &format!("sftp {}", self.server))
    }

    async fn get(&mut self, path: &str, local: LocalFile) -> Result<u64> {
        let p = self.full(path)?;
        let count = local.counter();
        self.conn()?
            .get_into(&p, local.file, &local.shown, Some(&count))
            .await
            .map_err(|e| map_sftp_error(e, false))
    }

    async fn get_contents(&mut self, path: &str, max: usize) -> Result<Option<Vec<u8>>> {
        let p = self.full(path)?;
        self.conn()?
            .get_bytes(&p, max)
            .await
            .map(Some)
            .map_err(|e| map_sftp_error(e, false))
    }

    async fn mkdir(&mut self, path: &str) -> Result<()> {
        let p = self.full(path)?;
        self.conn()?
            .mkdir(&p)
            .await
            .map_err(|e| map_sftp_error(e, false))
    }

    async fn mkdir_new(&mut self, path: &str) -> Result<bool> {
        let p = self.full(path)?;
        self.conn()?
            .mkdir_new(&p)
            .await
            .map_err(|e| map_sftp_error(e, false))
    }

    async fn delete_file(&mut self, path: &str) -> Result<()> {
        let p = self.full(path)?;
        self.conn()?
            .remove_file(&p)
            .await
            .map_err(|e| map_sftp_error(e, false))
    }

    async fn remove_dir(&mut self, path: &str) -> Result<()> {
        let p = self.full(path)?;
        self.conn()?
            .remove_dir(&p)
            .await
            .map_err(|e| map_sftp_error(e, false))
    }

    /// The last remote of a session ends it; the others only let go of it.
    async fn close(&mut self) -> Result<()> {
        match self.conn.take().map(Arc::try_unwrap) {
            Some(Ok(c)) => c.quit().await.map_err(|e| map_sftp_error(e, false)),
            Some(Err(_)) | None => Ok(()),
        }
    }
}

/// Workers per SSH session. One session's requests are answered by id, so uploads interleave
/// on it; several files in flight per session let the server take many requests per wake-up
/// (sshd reads one burst, sftp-server answers it in one go) instead of one file's requests
/// per wake-up per process. Measured on loopback, 5,000 × 4 KiB with `max_connections = 4`
/// (2 cores shared with other work, median of 5): 1 per session (4 workers) 1.30 s and
/// 0.90 s of server CPU, 2 (8 workers) 1.04 s and 0.64 s, 4 (16 workers) 0.81 s and 0.51 s,
/// 8 (32 workers) 0.70 s and 0.42 s. 4, not 8: each upload reads up to 2 MiB ahead (64
/// WRITEs of 32 KiB), so workers times that is the read-ahead a run of large files may hold.
///
/// Only where the server says it keeps many handles open at once (it offers
/// `limits@openssh.com`, as OpenSSH's sftp-server does): proftpd's mod_sftp keeps one
/// transfer's state per session, and its TransferLog lost about half of the uploads that
/// overlapped on one session (the files themselves arrived intact), so a server that does not
/// say gets one worker per session, as before.
pub(crate) const STREAMS_PER_SESSION: usize = 4;

/// Opens [`SftpRemote`]s with the same options (secrets stay in `SecretString`s; the
/// options' `Debug` prints `****`).
#[derive(Debug)]
pub(crate) struct SftpRemoteFactory {
    opts: ConnectOptions,
    root: String,
    /// Remotes handed out per SSH session (see [`SftpRemoteFactory::connect`]): 1 until a
    /// login shows the server takes several transfers at once, then [`STREAMS_PER_SESSION`].
    streams: AtomicUsize,
    /// The session new remotes join while it has room: the session (weak: it ends with its
    /// last remote) and how many remotes it was given.
    session: tokio::sync::Mutex<(std::sync::Weak<SftpConnection>, usize)>,
    /// What the last real login took.
    login_ns: std::sync::atomic::AtomicU64,
    /// Files replaced by remove + rename since the last [`take_notes`](RemoteFactory::take_notes).
    replaced: Arc<AtomicUsize>,
}

impl SftpRemoteFactory {
    /// Connections to `endpoint`, in its remote root.
    pub(crate) fn new(endpoint: &Endpoint, settings: &SftpSettings) -> Self {
        Self {
            opts: connect_options(endpoint, settings),
            root: endpoint.root.trim_end_matches('/').to_string(),
            replaced: Arc::default(),
            streams: AtomicUsize::new(1),
            session: tokio::sync::Mutex::new((std::sync::Weak::new(), 0)),
            login_ns: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl RemoteFactory for SftpRemoteFactory {
    fn describe(&self) -> String {
        format!(
            "sftp://{}@{}/{}",
            self.opts.username,
            self.opts.server(),
            self.root.trim_start_matches('/')
        )
    }

    fn streams_per_login(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }

    fn login_cost(&self) -> Option<std::time::Duration> {
        match self.login_ns.load(Ordering::SeqCst) {
            0 => None,
            ns => Some(std::time::Duration::from_nanos(ns)),
        }
    }

    /// A remote on the current SSH session while it has fewer than `streams` (its requests
    /// interleave with theirs: SFTP answers by request id), else on a new session. Logins are
    /// taken one at a time, so remotes asked for together share the session being opened.
    async fn connect(&self) -> Result<Box<dyn Remote>> {
        let mut session = self.session.lock().await;
        let conn = match session.0.upgrade() {
            Some(c) if session.1 < self.streams.load(Ordering::SeqCst) && c.is_open() => {
                session.1 += 1;
                c
            }
            _ => {
                let started = std::time::Instant::now();
                let c = Arc::new(
                    SftpConnection::connect(&self.opts)
                        .await
                        .map_err(|e| map_sftp_error(e, true))?,
                );
                let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.login_ns.store(took.max(1), Ordering::SeqCst);
                let streams = if c.takes_concurrent_transfers() {
                    STREAMS_PER_SESSION
                } else {
                    1
                };
                self.streams.store(streams, Ordering::SeqCst);
                *session = (Arc::downgrade(&c), 1);
                c
            }
        };
        drop(session);
        let server = conn.server().to_string();
        Ok(Box::new(SftpRemote {
            conn: Some(conn),
            root: self.root.clone(),
            server,
            replaced: self.replaced.clone(),
        }))
    }

    /// The uploads that replaced a file without posix-rename: the final name was missing for
    /// a moment, which a visitor of the site may have seen.
    fn take_notes(&self) -> Vec<String> {
        match self.replaced.swap(0, Ordering::Relaxed) {
            0 => Vec::new(),
            n => vec![replaced_note(n)],
        }
    }
}

/// The report's line for `n` files replaced by remove + rename.
fn replaced_note(n: usize) -> String {
    let files = if n == 1 { "file" } else { "files" };
    format!(
        "{n} {files} replaced by remove + rename (not atomic: the name was missing for a \
         moment): the server lacks posix-rename@openssh.com"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{Login, Protocol};
    use secrecy::SecretString;

    fn endpoint(login: Login) -> Endpoint {
        Endpoint::new(
            "h",
            22,
            Protocol::Sftp(SftpSettings::default()),
            "/site",
            login,
        )
    }

    #[test]
    fn modes_default_to_0644_and_0755() {
        let e = endpoint(Login::new("u", SecretString::from("pw")));
        let o = connect_options(&e, &SftpSettings::default());
        assert_eq!((o.file_mode, o.dir_mode), (0o644, 0o755));
        let s = SftpSettings {
            file_mode: Some(0o640),
            dir_mode: Some(0o750),
            ..SftpSettings::default()
        };
        let o = connect_options(&e, &s);
        assert_eq!((o.file_mode, o.dir_mode), (0o640, 0o750));
    }

    #[test]
    fn auth_is_key_then_agent_then_password() {
        let pw = Login::new("u", SecretString::from("pw"));
        let o = connect_options(&endpoint(pw.clone()), &SftpSettings::default());
        assert!(matches!(o.auth, Auth::Password(_)));
        let o = connect_options(
            &endpoint(Login::new("u", SecretString::from(""))),
            &SftpSettings::default(),
        );
        assert!(matches!(o.auth, Auth::Agent));
        let keyed = pw.with_ssh_key(SecretString::from("KEY"), None);
        let o = connect_options(&endpoint(keyed), &SftpSettings::default());
        assert!(matches!(o.auth, Auth::Key { .. }));
    }

    #[test]
    fn host_key_policies() {
        let mut s = SftpSettings {
            known_hosts: vec!["/k".into()],
            no_user_known_hosts: true,
            ..SftpSettings::default()
        };
        assert_eq!(
            host_key_policy(&s),
            HostKeyPolicy::KnownHosts(vec!["/k".into()])
        );
        s.host_key = Some("SHA256:x".into());
        assert_eq!(host_key_policy(&s), HostKeyPolicy::Pin("SHA256:x".into()));
        s.insecure = true;
        assert_eq!(host_key_policy(&s), HostKeyPolicy::Insecure);
    }

    #[test]
    fn host_key_errors_are_fatal_host_key_kind() {
        let e = SftpError::new(SftpErrorKind::HostKeyChanged, "h:22", "changed").with_hint("fix");
        let m = map_sftp_error(e, true);
        assert_eq!(m.kind(), ErrorKind::HostKey);
        assert!(m.is_fatal() && !m.is_retryable());
        assert_eq!(m.hint(), Some("fix"));
        let e = SftpError::new(SftpErrorKind::Login, "h:22", "refused");
        assert_eq!(map_sftp_error(e, true).kind(), ErrorKind::Login);
        let e = SftpError::new(SftpErrorKind::Transient, "h:22", "lost");
        assert!(map_sftp_error(e, false).is_retryable());
    }
}

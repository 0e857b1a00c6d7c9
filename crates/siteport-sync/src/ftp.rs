//! The FTP/FTPS adapter: [`FtpRemote`], the engine's [`Remote`] over one `siteport-ftp`
//! control connection, and [`FtpRemoteFactory`], which opens one per worker. It alone turns an
//! [`Endpoint`] into `siteport-ftp`'s `ConnectOptions` and FTP errors into the engine's kinds.

use std::time::SystemTime;

use async_trait::async_trait;
use siteport_ftp::{ConnectOptions, FtpConnection, FtpError, FtpErrorKind};

use crate::endpoint::{Endpoint, FtpSettings, TlsMode};
use crate::error::{Error, ErrorKind, Result};
use crate::remote::{
    Capabilities, EntryKind, HashAlg, LocalFile, ReadObserver, Remote, RemoteEntry, RemoteFactory,
    Staged,
};

/// Maps an FTP error to the engine's kinds. `connecting`: a `421` while logging in means the
/// server has too many connections (the engine then lowers its count); later it is an
/// ordinary transient failure.
fn map_ftp_error(e: FtpError, connecting: bool) -> Error {
    let kind = match e.kind() {
        FtpErrorKind::Login => ErrorKind::Login,
        FtpErrorKind::NotFound => ErrorKind::NotFound,
        FtpErrorKind::Permission => ErrorKind::Permission,
        FtpErrorKind::Tls => ErrorKind::Tls,
        FtpErrorKind::Network => ErrorKind::Network,
        FtpErrorKind::Transient if connecting && e.code() == Some(421) => {
            ErrorKind::TooManyConnections
        }
        FtpErrorKind::Transient if e.code().is_none() => ErrorKind::Network,
        FtpErrorKind::LocalIo => ErrorKind::LocalIo,
        _ => ErrorKind::Transfer,
    };
    let place = format!("ftp {}", e.server());
    let detail = match e.command() {
        Some(c) => format!("{c}: {}", e.message()),
        None => e.message().to_string(),
    };
    let hint = e.hint().map(str::to_string);
    let retryable = e.retryable() || kind == ErrorKind::TooManyConnections;
    // siteport-ftp's `Network` is the one kind of a server not reached (no address, refused,
    // unreachable, connect timeout); every other failure came from a live server.
    let reached = connecting && e.kind() != FtpErrorKind::Network;
    let mut out = Error::new(kind, place, detail)
        .retryable(retryable)
        .reached_server(reached);
    if let Some(h) = hint {
        out = out.with_hint(h);
    }
    out.with_source(e)
}

/// `siteport-ftp`'s options for `endpoint` (the password moves from one `SecretString` into
/// another, never through a plain `String`).
fn connect_options(endpoint: &Endpoint, settings: &FtpSettings) -> ConnectOptions {
    let tls = match settings.tls {
        TlsMode::None => siteport_ftp::TlsMode::None,
        TlsMode::Explicit => siteport_ftp::TlsMode::Explicit,
        TlsMode::Implicit => siteport_ftp::TlsMode::Implicit,
    };
    let mut o = ConnectOptions::new(
        endpoint.host.clone(),
        endpoint.port,
        tls,
        endpoint.login.username.clone(),
        endpoint.login.password.clone(),
    );
    o.ca_file = settings.ca_file.clone();
    o.fingerprint = settings.fingerprint.clone();
    o.insecure = settings.insecure;
    o.timeout = endpoint.timeout;
    o
}

/// [`crate::test_login`] over FTP: connect and log in, then `QUIT` (whose failure says nothing
/// about the login, so it is ignored).
pub(crate) async fn test_login(endpoint: &Endpoint, settings: &FtpSettings) -> Result<()> {
    let conn = FtpConnection::connect(&connect_options(endpoint, settings))
        .await
        .map_err(|e| map_ftp_error(e, true))?;
    let _ = conn.quit().await;
    Ok(())
}

/// One logged-in FTP connection, rooted at the site's remote directory.
pub(crate) struct FtpRemote {
    conn: Option<FtpConnection>,
    root: String,
    server: String,
    /// What the connection was made with, for the one fresh connection a call may take after
    /// the server turned out not to work in order (see [`FtpRemote::fell_back`]).
    opts: ConnectOptions,
}

impl std::fmt::Debug for FtpRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpRemote")
            .field("server", &self.server)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl FtpRemote {
    /// Wraps a connection; `root` is the site's remote directory (absolute, or relative to the
    /// login directory; empty for the login directory itself).
    fn new(conn: FtpConnection, root: &str, opts: ConnectOptions) -> Self {
        let server = conn.server().to_string();
        Self {
            conn: Some(conn),
            root: root.trim_end_matches('/').to_string(),
            server,
            opts,
        }
    }

    /// Whether the call that just failed on a pipelining connection failed because the server
    /// answered pipelined commands out of step (or closed on them): the connection closed and
    /// pipelining went off for the run. Such a call is tried once more on a fresh connection,
    /// one command at a time: the calls outside the engine's scheduler (the lock, the deploy
    /// state) have no retry of their own. Only calls that can be repeated as they are.
    fn fell_back(&self, was_pipelining: bool) -> bool {
        was_pipelining
            && self
                .conn
                .as_ref()
                .is_some_and(|c| !c.is_open() && !c.pipelines())
    }

    /// A fresh connection in place of a closed one.
    async fn reconnect(&mut self) -> Result<&mut FtpConnection> {
        let c = FtpConnection::connect(&self.opts)
            .await
            .map_err(|e| map_ftp_error(e, false))?;
        tracing::debug!(server = %self.server, "reconnected after the server fell out of step");
        Ok(self.conn.insert(c))
    }

    /// Whether the connection pipelines now.
    fn pipelining(&self) -> bool {
        self.conn.as_ref().is_some_and(FtpConnection::pipelines)
    }

    /// The server path of `rel`: under the site's root, or unchanged when absolute (the
    /// deploy state dir outside the web root). A hostile component is refused here too.
    fn full(&self, rel: &str) -> Result<String> {
        crate::path::server_path(&self.root, rel)
            .map_err(|why| Error::unsafe_name(format!("ftp {}: {rel:?}", self.server), why))
    }

    fn conn(&mut self) -> Result<&mut FtpConnection> {
        match self.conn.as_mut() {
            Some(c) if c.is_open() => Ok(c),
            _ => Err(Error::new(
                ErrorKind::Network,
                format!("ftp {}", self.server),
                "the connection is closed",
            )),
        }
    }
}

#[async_trait]
impl Remote for FtpRemote {
    fn describe(&self) -> String {
        format!(
            "ftp://{}/{}",
            self.server,
            self.root.trim_start_matches('/')
        )
    }

    fn capabilities(&self) -> Capabilities {
        match &self.conn {
            Some(c) => Capabilities {
                precise_mtime: c.features().mlsd,
                set_mtime: c.features().mfmt,
                hash: c.hash_algorithm().map(|a| match a {
                    siteport_ftp::HashAlgorithm::Sha256 => HashAlg::Sha256,
                    siteport_ftp::HashAlgorithm::Sha1 => HashAlg::Sha1,
                    siteport_ftp::HashAlgorithm::Md5 => HashAlg::Md5,
                }),
            },
            None => Capabilities::default(),
        }
    }

    async fn list_dir(&mut self, path: &str) -> Result<Vec<RemoteEntry>> {
        let p = self.full(path)?;
        let was = self.pipelining();
        let entries = match self.conn()?.list_dir(&p).await {
            Err(_) if self.fell_back(was) => self.reconnect().await?.list_dir(&p).await,
            r => r,
        }
        .map_err(|e| map_ftp_error(e, false))?;
        Ok(entries.into_iter().map(entry).collect())
    }

    async fn list_dirs(&mut self, paths: &[String]) -> Vec<Result<Vec<RemoteEntry>>> {
        let full: Vec<Result<String>> = paths.iter().map(|p| self.full(p)).collect();
        let wire: Vec<&str> = full.iter().flatten().map(String::as_str).collect();
        let mut listed = match self.conn() {
            Ok(c) => c.list_dirs(&wire).await.into_iter(),
            Err(e) => return paths.iter().map(|_| Err(e.duplicate())).collect(),
        };
        full.into_iter()
            .map(|f| {
                f?;
                let got = listed.next().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Transfer,
                        "ftp",
                        "internal: a listing went missing",
                    )
                })?;
                got.map(|v| v.into_iter().map(entry).collect())
                    .map_err(|e| map_ftp_error(e, false))
            })
            .collect()
    }

    async fn put_atomic(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<u64> {
        let p = self.full(path)?;
        let count = local.counter();
        self.conn()?
            .put_atomic_file(local.file, &local.shown, &p, mtime, observe, Some(&count))
            .await
            .map_err(|e| map_ftp_error(e, false))
    }

    async fn put_atomic_contents(
        &mut self,
        contents: &[u8],
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<u64> {
        let p = self.full(path)?;
        let was = self.pipelining();
        match self.conn()?.put_atomic_bytes(contents, &p, mtime).await {
            Err(_) if self.fell_back(was) => {
                self.reconnect()
                    .await?
                    .put_atomic_bytes(contents, &p, mtime)
                    .await
            }
            r => r,
        }
        .map_err(|e| map_ftp_error(e, false))
    }

    async fn put_staged(
        &mut self,
        local: LocalFile,
        path: &str,
        mtime: Option<SystemTime>,
        observe: Option<ReadObserver>,
    ) -> Result<(u64, Staged)> {
        let p = self.full(path)?;
        let count = local.counter();
        let (n, tmp) = self
            .conn()?
            .put_staged_file(local.file, &local.shown, &p, mtime, observe, Some(&count))
            .await
            .map_err(|e| map_ftp_error(e, false))?;
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
            .map_err(|e| map_ftp_error(e, false))?;
        Ok((n, Staged::beside(path, &tmp)))
    }

    /// Every pair in one pipelined batch where the server answers in order (see
    /// `FtpConnection::rename_many`), else one rename at a time.
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
            out[*i] = Some(r.map_err(|e| map_ftp_error(e, false)));
        }
        Staged::settled(out, &format!("ftp {}", self.server))
    }

    async fn get_contents(&mut self, path: &str, max: usize) -> Result<Option<Vec<u8>>> {
        let p = self.full(path)?;
        let was = self.pipelining();
        match self.conn()?.get_bytes(&p, max).await {
            Err(_) if self.fell_back(was) => self.reconnect().await?.get_bytes(&p, max).await,
            r => r,
        }
        .map(Some)
        .map_err(|e| map_ftp_error(e, false))
    }

    async fn get(&mut self, path: &str, local: LocalFile) -> Result<u64> {
        let p = self.full(path)?;
        let count = local.counter();
        self.conn()?
            .get_into(&p, local.file, &local.shown, Some(&count))
            .await
            .map_err(|e| map_ftp_error(e, false))
    }

    async fn remote_hash(&mut self, path: &str, alg: HashAlg) -> Result<String> {
        let p = self.full(path)?;
        let alg = match alg {
            HashAlg::Sha256 => siteport_ftp::HashAlgorithm::Sha256,
            HashAlg::Sha1 => siteport_ftp::HashAlgorithm::Sha1,
            HashAlg::Md5 => siteport_ftp::HashAlgorithm::Md5,
        };
        self.conn()?
            .file_hash(&p, alg)
            .await
            .map_err(|e| map_ftp_error(e, false))
    }

    async fn mkdir(&mut self, path: &str) -> Result<()> {
        let p = self.full(path)?;
        self.conn()?
            .mkdir(&p)
            .await
            .map_err(|e| map_ftp_error(e, false))
    }

    async fn mkdir_new(&mut self, path: &str) -> Result<bool> {
        let p = self.full(path)?;
        self.conn()?
            .mkdir_new(&p)
            .await
            .map_err(|e| map_ftp_error(e, false))
    }

    /// The chain in one write where the connection pipelines (see `FtpConnection::mkdirs`);
    /// after a server that fell out of step, once more one by one on a fresh connection
    /// (making a directory that exists is no error, so repeating is safe).
    async fn mkdirs(&mut self, paths: &[String]) -> Result<()> {
        let full = paths
            .iter()
            .map(|p| self.full(p))
            .collect::<Result<Vec<_>>>()?;
        let wire: Vec<&str> = full.iter().map(String::as_str).collect();
        let was = self.pipelining();
        match self.conn()?.mkdirs(&wire).await {
            Err(_) if self.fell_back(was) => self.reconnect().await?.mkdirs(&wire).await,
            r => r,
        }
        .map_err(|e| map_ftp_error(e, false))
    }

    /// `DELE` and `RMD` in one write where the connection pipelines (see
    /// `FtpConnection::delete_then_rmdir`). After a server that fell out of step, once more
    /// one at a time on a fresh connection; the directory found gone then is what the batch
    /// did (the caller checked the lock was its own), not a failure.
    async fn remove_file_and_dir(&mut self, file: &str, dir: &str) -> Result<()> {
        let (f, d) = (self.full(file)?, self.full(dir)?);
        let was = self.pipelining();
        let (dele, rmd) = match self.conn()?.delete_then_rmdir(&f, &d).await {
            Ok(r) => r,
            Err(_) if self.fell_back(was) => {
                let c = self.reconnect().await?;
                let dele = c.delete_file(&f).await.map_err(|e| map_ftp_error(e, false));
                let rmd = c.remove_dir(&d).await.map_err(|e| map_ftp_error(e, false));
                let rmd = match rmd {
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                    r => r,
                };
                return crate::remote::file_then_dir(dele, || async { rmd }).await;
            }
            Err(e) => return Err(map_ftp_error(e, false)),
        };
        let dele = dele.map_err(|e| map_ftp_error(e, false));
        let rmd = rmd.map_err(|e| map_ftp_error(e, false));
        crate::remote::file_then_dir(dele, || async { rmd }).await
    }

    async fn delete_file(&mut self, path: &str) -> Result<()> {
        let p = self.full(path)?;
        self.conn()?
            .delete_file(&p)
            .await
            .map_err(|e| map_ftp_error(e, false))
    }

    async fn remove_dir(&mut self, path: &str) -> Result<()> {
        let p = self.full(path)?;
        self.conn()?
            .remove_dir(&p)
            .await
            .map_err(|e| map_ftp_error(e, false))
    }

    async fn close(&mut self) -> Result<()> {
        match self.conn.take() {
            Some(c) => c.quit().await.map_err(|e| map_ftp_error(e, false)),
            None => Ok(()),
        }
    }
}

/// Opens [`FtpRemote`]s with the same options (the password stays inside `ConnectOptions`,
/// a `SecretString`).
pub(crate) struct FtpRemoteFactory {
    opts: ConnectOptions,
    root: String,
}

impl std::fmt::Debug for FtpRemoteFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // ConnectOptions' own Debug prints `password: "****"`.
        f.debug_struct("FtpRemoteFactory")
            .field("opts", &self.opts)
            .field("root", &self.root)
            .finish()
    }
}

impl FtpRemoteFactory {
    /// Connections to `endpoint`, in its remote root.
    pub(crate) fn new(endpoint: &Endpoint, settings: &FtpSettings) -> Self {
        Self {
            opts: connect_options(endpoint, settings),
            root: endpoint.root.clone(),
        }
    }
}

#[async_trait]
impl RemoteFactory for FtpRemoteFactory {
    fn describe(&self) -> String {
        format!(
            "ftp://{}@{}/{}",
            self.opts.username,
            self.opts.server(),
            self.root.trim_start_matches('/')
        )
    }

    async fn connect(&self) -> Result<Box<dyn Remote>> {
        let conn = FtpConnection::connect(&self.opts)
            .await
            .map_err(|e| map_ftp_error(e, true))?;
        Ok(Box::new(FtpRemote::new(
            conn,
            &self.root,
            self.opts.clone(),
        )))
    }
}

/// A listed FTP entry as the engine sees it.
fn entry(e: siteport_ftp::RemoteEntry) -> RemoteEntry {
    RemoteEntry {
        kind: match e.kind {
            siteport_ftp::EntryKind::File => EntryKind::File,
            siteport_ftp::EntryKind::Dir => EntryKind::Dir,
            siteport_ftp::EntryKind::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        },
        name: e.name,
        size: e.size,
        mtime: e.mtime,
        mtime_precise: e.mtime_precise,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure on the local side of an FTP transfer is the engine's `LocalIo`, by the FTP
    /// error's kind, not by its wording.
    #[test]
    fn ftp_local_io_maps_to_local_io() {
        let e = FtpError::new(FtpErrorKind::LocalIo, "127.0.0.1:21", "disk on fire")
            .with_source(std::io::Error::other("EIO"));
        let mapped = map_ftp_error(e, false);
        assert_eq!(mapped.kind(), ErrorKind::LocalIo, "{mapped}");
    }
}

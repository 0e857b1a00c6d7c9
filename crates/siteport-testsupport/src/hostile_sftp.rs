//! A hostile SFTP server on russh's server side and russh-sftp's server types: it accepts any
//! password or key and serves a made-up, read-only tree under `/site` whose listings carry
//! names that would escape or break a local mirror (`../x`, an absolute path, a name with `/`
//! or `\` inside) and a symbolic link pointing out of the site (to `/etc`), next to ordinary
//! files. It serves contents for every name it lists, the hostile ones included, and for
//! whatever a client asks through the link, so only the client's own checks keep anything
//! out of place. Every path a client asks for is recorded ([`HostileSftpServer::requests`]).
//! It writes only in memory, and only under `/site/.siteport` (the site lock and deploy
//! state an import keeps there); it offers no `posix-rename@openssh.com`, and its RENAME
//! refuses an existing target, as SFTP v3 says.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId};
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, FileMode, Handle, Name, OpenFlags, Status, StatusCode,
};

/// The names [`HostileSftpServer`] lists in `/site` besides its ordinary entries, except
/// the absolute one, which it builds from the directory given to
/// [`start`](HostileSftpServer::start) (see [`HostileSftpServer::absolute_name`]).
pub const HOSTILE_SFTP_NAMES: [&str; 4] = ["../x", "../../x", "a/x", "back\\x"];

/// The symbolic link [`HostileSftpServer`] lists in `/site`, and where it points.
pub const HOSTILE_SFTP_LINK: (&str, &str) = ("etc-link", "/etc");

/// What every hostile name serves, were a client to download it.
pub const HOSTILE_SFTP_CONTENT: &[u8] = b"written where it should not be\n";

/// The ordinary files of the tree: path under `/site`, contents.
pub const HOSTILE_SFTP_FILES: [(&str, &[u8]); 2] = [
    ("index.html", b"<h1>hello</h1>\n"),
    ("sub/page.html", b"a page\n"),
];

/// The modification time of every entry.
const MTIME: u32 = 1_600_000_000;

/// A running hostile SFTP server on `127.0.0.1`; stopped on drop.
pub struct HostileSftpServer {
    /// The port it listens on.
    pub port: u16,
    /// A known_hosts file that trusts its host key.
    pub known_hosts_file: PathBuf,
    absolute_name: String,
    requests: Arc<Mutex<Vec<String>>>,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for HostileSftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileSftpServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The made-up tree, by absolute path: directories, files and the link, plus the hostile
/// names each directory lists (served by [`Tree::contents`], never stored: a name with `/`
/// inside has no place of its own). Only [`WRITABLE`] can be changed, which the client's site
/// lock needs.
struct Tree {
    dirs: BTreeSet<String>,
    files: BTreeMap<String, Vec<u8>>,
    links: BTreeMap<String, String>,
    hostile: Vec<String>,
}

/// The one place a client may write: the deploy state dir (site lock, state).
const WRITABLE: &str = "/site/.siteport";

fn attrs(kind: FileMode, size: u64) -> FileAttributes {
    let mut a = FileAttributes {
        size: Some(size),
        uid: Some(0),
        gid: Some(0),
        permissions: Some(0o644),
        atime: Some(MTIME),
        mtime: Some(MTIME),
        ..FileAttributes::default()
    };
    a.set_type(kind);
    a
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn writable(path: &str) -> bool {
    path == WRITABLE || path.starts_with(&format!("{WRITABLE}/"))
}

impl Tree {
    fn new(absolute_name: &str) -> Tree {
        let mut t = Tree {
            dirs: ["/site", "/site/sub"]
                .into_iter()
                .map(String::from)
                .collect(),
            files: BTreeMap::new(),
            links: BTreeMap::new(),
            hostile: HOSTILE_SFTP_NAMES.iter().map(|n| n.to_string()).collect(),
        };
        t.hostile.push(absolute_name.to_string());
        for (rel, body) in HOSTILE_SFTP_FILES {
            t.files.insert(format!("/site/{rel}"), body.to_vec());
        }
        let (link, target) = HOSTILE_SFTP_LINK;
        t.links.insert(format!("/site/{link}"), target.into());
        t
    }

    /// The entries of directory `dir`: its children, and in `/site` and `/site/sub` the
    /// hostile names.
    fn list(&self, dir: &str) -> Vec<File> {
        let name = |p: &str| p.rsplit_once('/').map_or(p, |(_, n)| n).to_string();
        let mut out = Vec::new();
        for d in self.dirs.iter().filter(|d| parent(d) == dir) {
            out.push(File::new(name(d), attrs(FileMode::DIR, 4096)));
        }
        for (f, c) in self.files.iter().filter(|(f, _)| parent(f) == dir) {
            out.push(File::new(name(f), attrs(FileMode::REG, c.len() as u64)));
        }
        for (l, t) in self.links.iter().filter(|(l, _)| parent(l) == dir) {
            out.push(File::new(name(l), attrs(FileMode::LNK, t.len() as u64)));
        }
        if dir == "/site" || dir == "/site/sub" {
            let size = HOSTILE_SFTP_CONTENT.len() as u64;
            for n in &self.hostile {
                out.push(File::new(n.clone(), attrs(FileMode::REG, size)));
            }
        }
        out
    }

    /// `lstat` of a path: what the listing says, and anything under the link is served
    /// as a file (a client that follows the link gets content).
    fn lstat(&self, path: &str) -> Option<FileAttributes> {
        if self.dirs.contains(path) {
            return Some(attrs(FileMode::DIR, 4096));
        }
        if let Some(target) = self.links.get(path) {
            return Some(attrs(FileMode::LNK, target.len() as u64));
        }
        self.contents(path)
            .map(|c| attrs(FileMode::REG, c.len() as u64))
    }

    /// Whether `path` is under the link (or, with `itself`, the link itself).
    fn through_link(&self, path: &str, itself: bool) -> bool {
        self.links.keys().any(|l| {
            path.strip_prefix(l.as_str())
                .is_some_and(|r| r.starts_with('/') || (itself && r.is_empty()))
        })
    }

    fn contents(&self, path: &str) -> Option<Vec<u8>> {
        if let Some(c) = self.files.get(path) {
            return Some(c.clone());
        }
        // Through the link, or a hostile name joined and normalised by the client: the
        // server plays along and serves something.
        (self.through_link(path, false) || path.contains("..") || path.ends_with("/x"))
            .then(|| HOSTILE_SFTP_CONTENT.to_vec())
    }

    fn exists(&self, path: &str) -> bool {
        self.dirs.contains(path) || self.files.contains_key(path) || self.links.contains_key(path)
    }

    /// A new file or directory may go at `path`: in the writable area, in a directory.
    fn may_create(&self, path: &str) -> Result<(), StatusCode> {
        if !writable(path) {
            return Err(StatusCode::PermissionDenied);
        }
        if !self.dirs.contains(parent(path)) {
            return Err(StatusCode::NoSuchFile);
        }
        Ok(())
    }
}

impl HostileSftpServer {
    /// Starts the server. `outside`: a directory outside the client's local root; the
    /// absolute hostile name is `<outside>/x`, so a client that honoured it would write
    /// there, where the test looks.
    pub fn start(outside: &Path) -> HostileSftpServer {
        let dir = tempfile::Builder::new()
            .prefix("siteport-hostile-sftp")
            .tempdir()
            .expect("temp dir");
        let key_path = dir.path().join("host_ed25519");
        crate::sshd::keygen(&key_path, "");
        let key = russh::keys::load_secret_key(&key_path, None).expect("load the host key");
        let public = key.public_key().to_openssh().expect("public key text");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let known_hosts_file = dir.path().join("known_hosts");
        std::fs::write(&known_hosts_file, format!("[127.0.0.1]:{port} {public}\n"))
            .expect("write known_hosts");
        let absolute_name = format!("{}/x", outside.display());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let tree = Arc::new(Mutex::new(Tree::new(&absolute_name)));
        let config = Arc::new(russh::server::Config {
            keys: vec![key],
            auth_rejection_time: std::time::Duration::from_millis(10),
            auth_rejection_time_initial: Some(std::time::Duration::ZERO),
            ..Default::default()
        });
        let reqs = requests.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            while let Ok((socket, _)) = listener.accept().await {
                let handler = SshHandler {
                    tree: tree.clone(),
                    requests: reqs.clone(),
                    channels: HashMap::new(),
                };
                let config = config.clone();
                tokio::spawn(async move {
                    if let Ok(session) = russh::server::run_stream(config, socket, handler).await {
                        let _ = session.await;
                    }
                });
            }
        });
        HostileSftpServer {
            port,
            known_hosts_file,
            absolute_name,
            requests,
            runtime: Some(runtime),
            _dir: dir,
        }
    }

    /// The absolute name listed in `/site` and `/site/sub`: `<outside>/x`.
    pub fn absolute_name(&self) -> &str {
        &self.absolute_name
    }

    /// The host key's fingerprint, `SHA256:…`.
    pub fn fingerprint(&self) -> String {
        let text = std::fs::read_to_string(&self.known_hosts_file).unwrap_or_default();
        text.split_whitespace()
            .nth(2)
            .and_then(|b64| russh::keys::parse_public_key_base64(b64).ok())
            .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
            .unwrap_or_default()
    }

    /// Every request a client made so far, as `OP path` (`opendir /site`, `open /site/x`…).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for HostileSftpServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Not `drop`: that blocks, which an async test's thread may not.
            rt.shutdown_background();
        }
    }
}

/// The SSH side: any login is accepted; the `sftp` subsystem runs [`SftpHandler`].
struct SshHandler {
    tree: Arc<Mutex<Tree>>,
    requests: Arc<Mutex<Vec<String>>>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.close(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.remove(&channel_id) {
            Some(channel) if name == "sftp" => {
                session.channel_success(channel_id)?;
                let sftp = SftpHandler {
                    tree: self.tree.clone(),
                    requests: self.requests.clone(),
                    open: HashMap::new(),
                    listed: HashSet::new(),
                    next: 0,
                };
                russh_sftp::server::run(channel.into_stream(), sftp).await;
                Ok(())
            }
            _ => session.channel_failure(channel_id),
        }
    }
}

/// The SFTP side, over [`Tree`]: reads anywhere, writes only in [`WRITABLE`].
struct SftpHandler {
    tree: Arc<Mutex<Tree>>,
    requests: Arc<Mutex<Vec<String>>>,
    /// handle -> path.
    open: HashMap<String, String>,
    /// Directory handles whose entries were sent.
    listed: HashSet<String>,
    next: u64,
}

impl SftpHandler {
    fn record(&self, op: &str, path: &str) {
        if let Ok(mut r) = self.requests.lock() {
            r.push(format!("{op} {path}"));
        }
    }

    fn handle_for(&mut self, path: &str) -> String {
        self.next += 1;
        let h = format!("h{}", self.next);
        self.open.insert(h.clone(), path.to_string());
        h
    }

    fn status(id: u32) -> Status {
        Status {
            id,
            status_code: StatusCode::Ok,
            error_message: "Ok".into(),
            language_tag: "en-US".into(),
        }
    }
}

impl SftpHandler {
    /// The tree, locked (a poisoned lock still holds a usable tree: nothing panics while
    /// holding it halfway through a change).
    fn tree(&self) -> std::sync::MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path_of(&self, handle: &str) -> Result<String, StatusCode> {
        self.open.get(handle).cloned().ok_or(StatusCode::Failure)
    }
}

impl russh_sftp::server::Handler for SftpHandler {
    type Error = StatusCode;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        self.record("realpath", &path);
        Ok(Name {
            id,
            files: vec![File::dummy(path)],
        })
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        self.record("opendir", &path);
        let known = {
            let t = self.tree();
            t.dirs.contains(&path) || t.through_link(&path, true)
        };
        if !known {
            return Err(StatusCode::NoSuchFile);
        }
        let handle = self.handle_for(&path);
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let path = self.path_of(&handle)?;
        if !self.listed.insert(handle) {
            return Err(StatusCode::Eof);
        }
        let files = {
            let t = self.tree();
            if t.dirs.contains(&path) {
                t.list(&path)
            } else {
                // A directory reached through the link: it "holds" a passwd file.
                vec![File::new("passwd", attrs(FileMode::REG, 5))]
            }
        };
        Ok(Name { id, files })
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        self.record("open", &filename);
        {
            let mut t = self.tree();
            if pflags.intersects(OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE) {
                if !t.files.contains_key(&filename) {
                    t.may_create(&filename)?;
                    if t.exists(&filename) {
                        return Err(StatusCode::Failure);
                    }
                } else if !writable(&filename) {
                    return Err(StatusCode::PermissionDenied);
                }
                t.files.insert(filename.clone(), Vec::new());
            } else if t.dirs.contains(&filename) || t.contents(&filename).is_none() {
                return Err(StatusCode::NoSuchFile);
            }
        }
        let handle = self.handle_for(&filename);
        Ok(Handle { id, handle })
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let path = self.path_of(&handle)?;
        let body = self.tree().contents(&path).ok_or(StatusCode::NoSuchFile)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start >= body.len() {
            return Err(StatusCode::Eof);
        }
        let end = body.len().min(start.saturating_add(len as usize));
        Ok(Data {
            id,
            data: body[start..end].to_vec(),
        })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let path = self.path_of(&handle)?;
        let mut t = self.tree();
        if !writable(&path) {
            return Err(StatusCode::PermissionDenied);
        }
        let file = t.files.get_mut(&path).ok_or(StatusCode::NoSuchFile)?;
        let start = usize::try_from(offset).map_err(|_| StatusCode::Failure)?;
        let end = start.checked_add(data.len()).ok_or(StatusCode::Failure)?;
        if file.len() < end {
            file.resize(end, 0);
        }
        file[start..end].copy_from_slice(&data);
        Ok(Self::status(id))
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let path = self.path_of(&handle)?;
        let attrs = self.tree().lstat(&path).ok_or(StatusCode::NoSuchFile)?;
        Ok(Attrs { id, attrs })
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.path_of(&handle)?;
        Ok(Self::status(id))
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.record("setstat", &path);
        if !writable(&path) {
            return Err(StatusCode::PermissionDenied);
        }
        Ok(Self::status(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.record("lstat", &path);
        let attrs = self.tree().lstat(&path).ok_or(StatusCode::NoSuchFile)?;
        Ok(Attrs { id, attrs })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.record("stat", &path);
        let attrs = self.tree().lstat(&path).ok_or(StatusCode::NoSuchFile)?;
        Ok(Attrs { id, attrs })
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        self.record("readlink", &path);
        let target = self
            .tree()
            .links
            .get(&path)
            .cloned()
            .ok_or(StatusCode::NoSuchFile)?;
        Ok(Name {
            id,
            files: vec![File::dummy(target)],
        })
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.record("mkdir", &path);
        let mut t = self.tree();
        t.may_create(&path)?;
        if t.exists(&path) {
            return Err(StatusCode::Failure);
        }
        t.dirs.insert(path);
        Ok(Self::status(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        self.record("rmdir", &path);
        let mut t = self.tree();
        if !writable(&path) {
            return Err(StatusCode::PermissionDenied);
        }
        if !t.dirs.contains(&path) {
            return Err(StatusCode::NoSuchFile);
        }
        if !t.list(&path).is_empty() {
            return Err(StatusCode::Failure);
        }
        t.dirs.remove(&path);
        Ok(Self::status(id))
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        self.record("remove", &filename);
        let mut t = self.tree();
        if !writable(&filename) {
            return Err(StatusCode::PermissionDenied);
        }
        t.files.remove(&filename).ok_or(StatusCode::NoSuchFile)?;
        Ok(Self::status(id))
    }

    /// SFTP v3 RENAME: refused when the target exists (no `posix-rename@openssh.com` is
    /// offered either, so a client must remove, then rename).
    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        self.record("rename", &oldpath);
        let mut t = self.tree();
        if !writable(&oldpath) {
            return Err(StatusCode::PermissionDenied);
        }
        t.may_create(&newpath)?;
        if t.exists(&newpath) {
            return Err(StatusCode::Failure);
        }
        let body = t.files.remove(&oldpath).ok_or(StatusCode::NoSuchFile)?;
        t.files.insert(newpath, body);
        Ok(Self::status(id))
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        self.open.remove(&handle);
        self.listed.remove(&handle);
        Ok(Self::status(id))
    }
}

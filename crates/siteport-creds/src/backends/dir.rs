//! The `dir` backend: a mounted secrets directory (Kubernetes secret volume, Docker secrets).
//!
//! Layout: `<root>/<name>/username` and `<root>/<name>/password`, optionally `host` and
//! `port`, one value per file with its trailing newline stripped. Files are re-read on every
//! `get`, so a rotated Kubernetes secret is picked up without a restart.
//!
//! Kubernetes mounts secret volumes through symlinks (`username -> ..data/username`,
//! `..data -> ..2024_01_01_00_00_00.123/`); they are followed, but only while they stay inside
//! the root. Entries whose names start with `.` (such as `..data`) are never credentials.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::backends::env::strip_newlines;
use crate::credential::{Credential, CredentialName, ValidationError, parse_port};
use crate::error::{Error, ErrorKind, Result};
use crate::remedy::Remedy;

/// Settings of the dir backend (`[credentials.dir]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSettings {
    /// Root of the mounted secrets; else `SITEPORT_SECRETS_DIR`, else `/run/secrets/siteport`.
    pub root: Option<PathBuf>,
}

/// Variable naming the root when the config does not.
pub const SECRETS_DIR_ENV: &str = "SITEPORT_SECRETS_DIR";

/// Root used when neither the config nor [`SECRETS_DIR_ENV`] names one.
pub const DEFAULT_ROOT: &str = "/run/secrets/siteport";

/// Largest value file accepted: secrets are small; a big file is a wrong mount.
const MAX_VALUE_FILE: u64 = 64 * 1024;

/// Credentials in a directory tree, one sub-directory per credential. Holds no secret itself.
#[derive(Debug, Clone)]
pub struct DirBackend {
    root: PathBuf,
}

impl DirBackend {
    /// The backend rooted at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The root from `[credentials.dir] root`, else `SITEPORT_SECRETS_DIR`, else
    /// `/run/secrets/siteport`.
    pub fn from_settings(settings: &DirSettings) -> Self {
        Self::new(Self::root_from(
            settings,
            std::env::var_os(SECRETS_DIR_ENV).map(PathBuf::from),
        ))
    }

    /// The precedence of [`from_settings`](Self::from_settings), with the variable's value
    /// passed in (`env_root`) so that callers and tests control it. An empty value is unset.
    pub fn root_from(settings: &DirSettings, env_root: Option<PathBuf>) -> PathBuf {
        settings
            .root
            .clone()
            .or(env_root.filter(|p| !p.as_os_str().is_empty()))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn root_missing(&self, e: &std::io::Error) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            self.describe(),
            format!(
                "secrets directory {} is not usable: {e}",
                self.root.display()
            ),
        )
        .with_hint(format!(
            "mount the secrets volume at {}, or point `[credentials.dir] root` or \
             {SECRETS_DIR_ENV} at the directory that holds <name>/username and <name>/password",
            self.root.display()
        ))
    }

    /// The canonical root, or `Err` (with its io error) if it does not exist.
    fn canonical_root(&self) -> std::result::Result<PathBuf, std::io::Error> {
        let root = fs::canonicalize(&self.root)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(root)
    }

    /// Resolves `<root>/<name>/<field>` through symlinks: `None` if absent, an error if it
    /// leaves the root.
    fn resolve(&self, root: &Path, name: &CredentialName, field: &str) -> Result<Option<PathBuf>> {
        let path = self.root.join(name.as_str()).join(field);
        let shown = path.display();
        let real = match fs::canonicalize(&path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A dangling symlink (a half-rotated volume) is a fault, not an absence.
                if fs::symlink_metadata(&path).is_ok() {
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        self.describe(),
                        format!("{shown} is a symlink to a file that does not exist"),
                    ));
                }
                return Ok(None);
            }
            Err(e) => return Err(self.io_error(&path, "cannot resolve", e)),
        };
        if !real.starts_with(root) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                self.describe(),
                format!(
                    "{shown} resolves to {}, outside the secrets directory {}",
                    real.display(),
                    self.root.display()
                ),
            )
            .with_hint("secret files must stay inside the secrets directory; fix the symlink"));
        }
        Ok(Some(real))
    }

    /// Reads `<root>/<name>/<field>`: `None` if absent, an error if it escapes the root, is
    /// unreadable, too big or not UTF-8. Returns the value and the file's modification time.
    fn read_value(
        &self,
        root: &Path,
        name: &CredentialName,
        field: &str,
    ) -> Result<Option<(SecretString, Option<OffsetDateTime>)>> {
        let Some(real) = self.resolve(root, name, field)? else {
            return Ok(None);
        };
        let path = self.root.join(name.as_str()).join(field);
        let shown = path.display();
        let file = fs::File::open(&real).map_err(|e| self.io_error(&path, "cannot open", e))?;
        let meta = file
            .metadata()
            .map_err(|e| self.io_error(&path, "cannot stat", e))?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!("{shown} is not a regular file"),
            ));
        }
        let mut buf = Zeroizing::new(Vec::new());
        file.take(MAX_VALUE_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| self.io_error(&path, "cannot read", e))?;
        if buf.len() as u64 > MAX_VALUE_FILE {
            return Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!("{shown} is larger than {MAX_VALUE_FILE} bytes"),
            ));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| {
            Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!("{shown} is not valid UTF-8"),
            )
        })?;
        let mtime = meta.modified().ok().map(OffsetDateTime::from);
        Ok(Some((
            SecretString::from(strip_newlines(text).to_owned()),
            mtime,
        )))
    }

    fn io_error(&self, path: &Path, what: &str, e: std::io::Error) -> Error {
        let kind = match e.kind() {
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Unavailable,
        };
        Error::new(
            kind,
            self.describe(),
            format!("{what} {}: {e}", path.display()),
        )
    }

    fn invalid(&self, name: &CredentialName, file: &str, e: ValidationError) -> Error {
        Error::new(
            ErrorKind::Invalid,
            self.describe(),
            format!(
                "{}: {e}",
                self.root.join(name.as_str()).join(file).display()
            ),
        )
    }

    fn not_found(&self, name: &CredentialName, detail: String) -> Error {
        let dir = self.root.join(name.as_str());
        Error::new(
            ErrorKind::NotFound,
            self.describe(),
            format!("credential '{name}' not found: {detail}"),
        )
        .with_hint(format!(
            "create {0}/username and {0}/password (for Kubernetes: a Secret with keys \
             `username` and `password` mounted at {0})",
            dir.display()
        ))
    }

    /// Whether `<name>/<field>` is there, with its modification time, without reading it
    /// (listing must not read secrets).
    fn presence(
        &self,
        root: &Path,
        name: &CredentialName,
        field: &str,
    ) -> Result<Option<(SecretString, Option<OffsetDateTime>)>> {
        Ok(self.resolve(root, name, field)?.map(|real| {
            let mtime = fs::metadata(&real)
                .and_then(|m| m.modified())
                .ok()
                .map(OffsetDateTime::from);
            (SecretString::from(String::new()), mtime)
        }))
    }

    fn load(&self, root: &Path, name: &CredentialName, with_password: bool) -> Result<Loaded> {
        let password_path = self.root.join(name.as_str()).join("password");
        let mut password = if with_password {
            self.read_value(root, name, "password")?
        } else {
            self.presence(root, name, "password")?
        };
        let (mut ssh_key, mut ssh_key_passphrase) = (None, None);
        if with_password {
            ssh_key = self
                .read_value(root, name, "ssh_key")?
                .map(|(k, _)| with_final_newline(k));
            ssh_key_passphrase = self
                .read_value(root, name, "ssh_key_passphrase")?
                .map(|(p, _)| p);
        }
        // A key-only (SFTP) credential has an `ssh_key` file and no `password`.
        if password.is_none() {
            password = self
                .presence(root, name, "ssh_key")?
                .map(|(_, mtime)| (SecretString::from(String::new()), mtime));
        }
        let Some((password, updated)) = password else {
            return Ok(Loaded::Absent(format!(
                "{} does not exist",
                password_path.display()
            )));
        };
        let Some((username, _)) = self.read_value(root, name, "username")? else {
            return Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!(
                    "credential '{name}' is incomplete: {} exists but {} does not",
                    password_path.display(),
                    self.root.join(name.as_str()).join("username").display()
                ),
            )
            .with_hint("add the `username` key to the secret"));
        };
        let host = self
            .read_value(root, name, "host")?
            .map(|(h, _)| h.expose_secret().to_owned());
        let port = match self.read_value(root, name, "port")? {
            Some((p, _)) => {
                Some(parse_port(p.expose_secret()).map_err(|e| self.invalid(name, "port", e))?)
            }
            None => None,
        };
        Ok(Loaded::Found {
            username: username.expose_secret().to_owned(),
            password,
            host,
            port,
            ssh_key,
            ssh_key_passphrase,
            updated,
        })
    }

    fn build(&self, name: &CredentialName, l: Loaded) -> Result<Credential> {
        let Loaded::Found {
            username,
            password,
            host,
            port,
            ssh_key,
            ssh_key_passphrase,
            updated,
        } = l
        else {
            return Err(self.not_found(name, "no password".into()));
        };
        let mut cred = Credential::from_parts(
            name.clone(),
            username,
            Some(password),
            ssh_key,
            ssh_key_passphrase,
        )
        .map_err(|e| self.invalid(name, e.field, e))?;
        if let Some(h) = host {
            cred = cred
                .with_host(h)
                .map_err(|e| self.invalid(name, "host", e))?;
        }
        if let Some(p) = port {
            cred = cred
                .with_port(p)
                .map_err(|e| self.invalid(name, "port", e))?;
        }
        Ok(cred.with_times(None, updated))
    }

    /// Candidate credential names under the root, plus notes about entries skipped.
    fn entries(&self, root: &Path) -> Result<(Vec<CredentialName>, Vec<String>)> {
        let rd = fs::read_dir(root).map_err(|e| self.io_error(&self.root, "cannot list", e))?;
        let mut names = Vec::new();
        let mut notes = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| self.io_error(&self.root, "cannot list", e))?;
            let file_name = entry.file_name();
            let Some(s) = file_name.to_str() else {
                notes.push(format!(
                    "ignoring {}: not a valid credential name",
                    entry.path().display()
                ));
                continue;
            };
            // `..data`, `..2024_…` and other dot entries are volume plumbing, not credentials.
            if s.starts_with('.') {
                continue;
            }
            // `is_dir` follows symlinks, as a Kubernetes projected volume needs.
            if !entry.path().is_dir() {
                continue;
            }
            match CredentialName::new(s) {
                Ok(n) if n.as_str() == s => names.push(n),
                _ => notes.push(format!(
                    "ignoring {}: '{s}' is not a valid credential name (lowercase a-z, 0-9, '.', '_', '-')",
                    entry.path().display()
                )),
            }
        }
        names.sort();
        Ok((names, notes))
    }
}

enum Loaded {
    Absent(String),
    Found {
        username: String,
        password: SecretString,
        host: Option<String>,
        port: Option<u16>,
        /// An SSH key and its passphrase (SFTP); `None` while listing, which reads no secret.
        ssh_key: Option<SecretString>,
        ssh_key_passphrase: Option<SecretString>,
        updated: Option<OffsetDateTime>,
    },
}

#[async_trait]
impl CredentialBackend for DirBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Dir
    }

    fn describe(&self) -> String {
        format!("dir backend ({})", self.root.display())
    }

    fn is_writable(&self) -> bool {
        false
    }

    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        let root = match self.canonical_root() {
            Ok(r) => r,
            Err(e) => {
                let mut err = self.not_found(
                    name,
                    format!(
                        "{} does not exist (secrets directory {}: {e})",
                        self.root.join(name.as_str()).join("password").display(),
                        self.root.display()
                    ),
                );
                if let Some(h) = self.root_missing(&e).hint() {
                    err = err.with_hint(h.to_owned());
                }
                return Err(err);
            }
        };
        match self.load(&root, name, true)? {
            Loaded::Absent(why) => Err(self.not_found(name, why)),
            found => self.build(name, found),
        }
    }

    async fn store(&self, cred: &Credential, _mode: StoreMode) -> Result<()> {
        Err(Error::unsupported(self.describe(), "storing a credential")
            .with_hint("the dir backend reads a mounted secrets volume and never writes to it")
            .with_remedy(Remedy::CreateThroughOrchestrator {
                dir: self.root.join(cred.name().as_str()),
                name: cred.name().clone(),
            }))
    }

    async fn delete(&self, name: &CredentialName) -> Result<()> {
        Err(
            Error::unsupported(self.describe(), "deleting a credential").with_hint(format!(
                "the dir backend never writes to the secrets volume; remove {} from the \
                 mounted secret instead",
                self.root.join(name.as_str()).display()
            )),
        )
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        let root = self.canonical_root().map_err(|e| self.root_missing(&e))?;
        let (names, _) = self.entries(&root)?;
        let mut out = Vec::new();
        for name in names {
            if let Loaded::Found {
                username,
                host,
                port,
                updated,
                ..
            } = self.load(&root, &name, false)?
            {
                out.push(CredentialInfo {
                    name,
                    username: Some(username),
                    host,
                    port,
                    created: None,
                    updated,
                    source: BackendKind::Dir,
                });
            }
        }
        Ok(out)
    }

    async fn check(&self) -> Result<Health> {
        let root = self.canonical_root().map_err(|e| self.root_missing(&e))?;
        let (names, mut notes) = self.entries(&root)?;
        let mut count = 0;
        let mut problems = Vec::new();
        for name in names {
            match self.load(&root, &name, true).and_then(|l| match l {
                Loaded::Absent(why) => Ok(Some(why)),
                found => self.build(&name, found).map(|_| None),
            }) {
                Ok(None) => count += 1,
                Ok(Some(why)) => notes.push(format!("ignoring {name}: {why}")),
                Err(e) => problems.push(e.detail().to_owned()),
            }
        }
        if !problems.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                self.describe(),
                problems.join("; "),
            ));
        }
        notes.insert(0, format!("{count} credential(s)"));
        Ok(Health { notes })
    }
}

/// A key read from a file lost its final newline (stripped like every value's); PEM parsers
/// want the armour's last line terminated.
fn with_final_newline(key: SecretString) -> SecretString {
    if key.expose_secret().ends_with('\n') {
        return key;
    }
    SecretString::from(format!("{}\n", key.expose_secret()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn name(s: &str) -> CredentialName {
        CredentialName::new(s).unwrap()
    }

    fn put(dir: &Path, file: &str, value: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(file), value).unwrap();
    }

    #[test]
    fn root_precedence() {
        let s = DirSettings {
            root: Some("/a".into()),
        };
        assert_eq!(
            DirBackend::root_from(&s, Some("/b".into())),
            Path::new("/a")
        );
        let s = DirSettings::default();
        assert_eq!(
            DirBackend::root_from(&s, Some("/b".into())),
            Path::new("/b")
        );
        assert_eq!(
            DirBackend::root_from(&s, Some("".into())),
            Path::new(DEFAULT_ROOT)
        );
        assert_eq!(DirBackend::root_from(&s, None), Path::new(DEFAULT_ROOT));
    }

    #[tokio::test]
    async fn rereads_on_every_get() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("acme");
        put(&d, "username", "u\n");
        put(&d, "password", "first-pw\n");
        let b = DirBackend::new(t.path().to_owned());
        let n = name("acme");
        assert_eq!(
            b.get(&n).await.unwrap().password().expose_secret(),
            "first-pw"
        );
        put(&d, "password", "second-pw\n");
        assert_eq!(
            b.get(&n).await.unwrap().password().expose_secret(),
            "second-pw"
        );
    }

    #[tokio::test]
    async fn missing_root_and_missing_password() {
        let t = tempfile::tempdir().unwrap();
        let b = DirBackend::new(t.path().join("nope"));
        let e = b.check().await.unwrap_err();
        assert!(
            e.to_string()
                .contains(&t.path().join("nope").display().to_string()),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("SITEPORT_SECRETS_DIR"));
        let e = b.get(&name("acme")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("nope/acme/password"), "{e}");

        let b = DirBackend::new(t.path().to_owned());
        put(&t.path().join("half"), "password", "pw-half");
        let e = b.get(&name("half")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.to_string().contains("half/username"), "{e}");
        assert!(!e.to_string().contains("pw-half"));
        let e = b.get(&name("other")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("other/password"), "{e}");
    }

    #[tokio::test]
    async fn symlink_out_of_root_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("pw"), "stolen-pw").unwrap();
        let d = t.path().join("evil");
        put(&d, "username", "u");
        symlink(outside.path().join("pw"), d.join("password")).unwrap();
        let b = DirBackend::new(t.path().to_owned());
        let e = b.get(&name("evil")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(
            e.to_string().contains("outside the secrets directory"),
            "{e}"
        );
        assert!(!format!("{e:?}").contains("stolen-pw"));
    }

    #[tokio::test]
    async fn bad_values_name_the_file() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a");
        put(&d, "username", "u");
        put(&d, "password", "pw-a");
        put(&d, "port", "http");
        fs::create_dir_all(t.path().join("Upper")).unwrap();
        let b = DirBackend::new(t.path().to_owned());
        let e = b.get(&name("a")).await.unwrap_err();
        assert!(e.to_string().contains("a/port: invalid port"), "{e}");
        put(&d, "port", "2121");
        fs::write(d.join("password"), [0xffu8, 0xfe]).unwrap();
        let e = b.get(&name("a")).await.unwrap_err();
        assert!(
            e.to_string().contains("a/password is not valid UTF-8"),
            "{e}"
        );
        let e = b.check().await.unwrap_err();
        assert!(e.to_string().contains("not valid UTF-8"), "{e}");
        put(&d, "password", "ok-pw");
        let h = b.check().await.unwrap();
        assert_eq!(h.notes[0], "1 credential(s)");
        assert!(h.notes.iter().any(|n| n.contains("'Upper'")), "{h:?}");
    }
}

//! The `file` backend (the default): every credential in one age-encrypted file.
//!
//! The store is a single armored age file whose plaintext is a JSON document
//! (`{"version":1,"recipients":[…],"credentials":{…}}`), so the standard `age`/`rage` CLI can
//! always decrypt it. It is encrypted either to X25519 / SSH recipients (identity mode, the
//! default; the owner's identity lives in an `age-keygen`-style file) or to a passphrase
//! (scrypt). Writes are atomic and serialised by an advisory lock on `<store>.lock`; the
//! decrypted document is cached in memory, zeroized on drop, and re-used only while the
//! ciphertext on disk is unchanged.

mod crypto;
mod document;
mod fsio;
mod lifecycle;
mod paths;
mod recipients;
mod settings;
mod unlock;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;
use time::OffsetDateTime;

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};
use crate::prompt::Prompter;
use crate::remedy::Remedy;

use crypto::Key;
use document::{Document, Record};

pub use crypto::PASSPHRASE_WORK_FACTOR;
pub use paths::{CREDENTIALS_FILE_ENV, FileEnv, IDENTITY_FILE_ENV, PASSPHRASE_ENV};
pub use settings::FileSettings;

/// How long a writer waits for another process's lock before giving up with `Locked`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// How the store is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    /// To an age X25519 identity (plus any extra recipients). The default.
    Identity,
    /// To a passphrase (age scrypt).
    Passphrase,
}

impl fmt::Display for KeyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyMode::Identity => "identity",
            KeyMode::Passphrase => "passphrase",
        })
    }
}

/// What `siteport credential init` asks for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Identity (default) or passphrase mode.
    pub mode: KeyMode,
    /// Extra recipients (`age1…` or SSH public keys), identity mode only.
    pub recipients: Vec<String>,
    /// Start over even if a store exists (the old one is kept as a backup).
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            mode: KeyMode::Identity,
            recipients: Vec::new(),
            force: false,
        }
    }
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The store that was created.
    pub store: PathBuf,
    /// The identity file used (identity mode); it is re-used if it already existed.
    pub identity: Option<PathBuf>,
    /// The identity's public key (`age1…`), to share with whoever should add you as a recipient.
    pub public_key: Option<String>,
    /// The mode of the new store.
    pub mode: KeyMode,
    /// Whether the identity file was generated now (false: an existing one was re-used).
    pub identity_created: bool,
    /// Backups made of a store replaced with `force`.
    pub backups: Vec<PathBuf>,
}

/// What `siteport credential rekey` asks for.
#[derive(Debug, Clone)]
pub struct RekeyOptions {
    /// The mode after rekeying.
    pub mode: KeyMode,
    /// Identity mode: generate a new identity (the old identity file is backed up).
    pub new_identity: bool,
    /// Identity mode: the new set of extra recipients; `None` keeps the current extras.
    pub recipients: Option<Vec<String>>,
}

/// What `rekey` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// The re-encrypted store.
    pub store: PathBuf,
    /// Copy of the store as it was, still encrypted under the old key (0600).
    pub backup: PathBuf,
    /// The mode after rekeying.
    pub mode: KeyMode,
    /// The identity's public key (identity mode).
    pub public_key: Option<String>,
    /// Backup of the previous identity file, when a new identity replaced it.
    pub identity_backup: Option<PathBuf>,
    /// Everyone the store is now encrypted to (identity mode), own key first.
    pub recipients: Vec<String>,
}

/// The encrypted-file credential store. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct FileBackend {
    inner: Arc<Inner>,
}

/// Builds a [`FileBackend`] with explicit environment, prompter and lock timeout.
pub struct FileBackendBuilder {
    settings: FileSettings,
    env: Option<FileEnv>,
    prompter: Arc<dyn Prompter>,
    lock_timeout: Duration,
}

impl fmt::Debug for FileBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBackendBuilder")
            .field("settings.path", &self.settings.path)
            .field("settings.identity", &self.settings.identity)
            .field("env", &self.env)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

impl FileBackendBuilder {
    /// Uses `env` instead of the process environment (tests, embedding).
    pub fn env(mut self, env: FileEnv) -> Self {
        self.env = Some(env);
        self
    }

    /// Who answers passphrase prompts.
    pub fn prompter(mut self, prompter: Arc<dyn Prompter>) -> Self {
        self.prompter = prompter;
        self
    }

    /// How long to wait for another writer's lock (default [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Resolves paths and returns the backend. No file is touched until first use.
    pub fn open(self) -> Result<FileBackend> {
        let env = self.env.unwrap_or_else(FileEnv::from_process);
        let (store, identity) = env.resolve(&self.settings)?;
        let store = resolve_link(store, "store")?;
        let identity = resolve_link(identity, "identity file")?;
        let describe = format!("file backend ({})", store.display());
        Ok(FileBackend {
            inner: Arc::new(Inner {
                store,
                identity,
                passphrase_command: self.settings.passphrase_command.clone(),
                env_passphrase: env.passphrase_value().cloned(),
                prompter: self.prompter,
                lock_timeout: self.lock_timeout,
                accept_recipients: self.settings.accept_recipients,
                describe,
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// Creates a new store (see [`FileBackend::init`]).
    pub fn init(self, opts: InitOptions) -> Result<InitReport> {
        self.open()?.inner.init(opts)
    }
}

impl FileBackend {
    /// Opens the store named by `settings` (else `SITEPORT_CREDENTIALS_FILE`, else
    /// `$XDG_DATA_HOME/siteport/credentials.age`). Only resolves paths: the store is read and
    /// unlocked on first use.
    pub fn open(settings: &FileSettings, prompter: Arc<dyn Prompter>) -> Result<Self> {
        Self::builder(settings).prompter(prompter).open()
    }

    /// A builder, for an explicit environment or lock timeout.
    pub fn builder(settings: &FileSettings) -> FileBackendBuilder {
        FileBackendBuilder {
            settings: settings.clone(),
            env: None,
            prompter: Arc::new(crate::NoPrompter),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// The store file.
    pub fn store_path(&self) -> &Path {
        &self.inner.store
    }

    /// The identity file (identity mode).
    pub fn identity_path(&self) -> &Path {
        &self.inner.identity
    }

    /// Creates an empty store. Identity mode generates an identity file (0600) unless one
    /// exists, which is then re-used; passphrase mode asks for the passphrase
    /// (`SITEPORT_PASSPHRASE`, `passphrase_command`, or the prompter, twice). An existing store is
    /// an `AlreadyExists` error unless `opts.force`, which keeps it as a backup.
    pub fn init(
        settings: &FileSettings,
        opts: InitOptions,
        prompter: Arc<dyn Prompter>,
    ) -> Result<InitReport> {
        Self::builder(settings).prompter(prompter).init(opts)
    }

    /// Re-encrypts the store to a new identity, a passphrase, or a new recipient set, after
    /// writing a backup of the current ciphertext. In passphrase mode the new passphrase
    /// comes from the prompter (asked twice), or, when leaving identity mode, from
    /// `SITEPORT_PASSPHRASE` / `passphrase_command` first.
    pub async fn rekey(&self, opts: RekeyOptions) -> Result<RekeyReport> {
        self.rekey_with(opts, None).await
    }

    /// [`rekey`](Self::rekey) with the new passphrase given explicitly (e.g. read by the CLI
    /// from stdin). Ignored in identity mode.
    pub async fn rekey_with(
        &self,
        opts: RekeyOptions,
        new_passphrase: Option<SecretString>,
    ) -> Result<RekeyReport> {
        self.blocking(move |inner| inner.rekey(opts, new_passphrase))
            .await
    }

    /// The mode of the store on disk, read from its header; `None` if it does not exist.
    pub fn detect_mode(&self) -> Result<Option<KeyMode>> {
        let inner = &self.inner;
        Ok(match inner.read_store()? {
            None => None,
            Some(bytes) => Some(
                if crypto::header_is_passphrase(&bytes, &inner.describe, &inner.store)? {
                    KeyMode::Passphrase
                } else {
                    KeyMode::Identity
                },
            ),
        })
    }

    /// Runs blocking file and crypto work off the async executor when a tokio runtime is
    /// present (lock waits and scrypt take long enough to stall it), inline otherwise.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || f(&inner))
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Unavailable,
                        self.describe(),
                        format!("internal task failed: {e}"),
                    )
                })?,
            Err(_) => f(&inner),
        }
    }
}

impl fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let (unlocked, mode) = match i.state.lock() {
            Ok(s) => (
                s.cache.is_some(),
                s.key.as_ref().map(|k| {
                    if k.is_passphrase() {
                        KeyMode::Passphrase
                    } else {
                        KeyMode::Identity
                    }
                }),
            ),
            Err(_) => (false, None),
        };
        f.debug_struct("FileBackend")
            .field("store", &i.store)
            .field("identity", &i.identity)
            .field(
                "passphrase_command",
                &i.passphrase_command.as_ref().map(|_| "<set>"),
            )
            .field("lock_timeout", &i.lock_timeout)
            .field("unlocked", &unlocked)
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: PathBuf,
    identity: PathBuf,
    passphrase_command: Option<String>,
    env_passphrase: Option<SecretString>,
    prompter: Arc<dyn Prompter>,
    lock_timeout: Duration,
    /// `--accept-recipients`: take a store whose recipients changed (see `recipients.rs`).
    accept_recipients: bool,
    describe: String,
    state: Mutex<State>,
}

/// A store or identity reached through a symbolic link is used where the link points, resolved
/// once here: every read, the lock, the temp file and the rename then happen in the target's
/// directory, so a write replaces the target (the link stays a link) instead of replacing the
/// link with a regular file, which would fork the store. A link to nothing is refused.
fn resolve_link(path: PathBuf, what: &str) -> Result<PathBuf> {
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(&path).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                "file backend",
                format!(
                    "{what} {} is a symbolic link that cannot be followed: {e}",
                    path.display()
                ),
            )
            .with_hint(format!(
                "point the link at an existing file, or remove it ({what}s reached through a \
                 link are used where the link points)"
            ))
        }),
        _ => Ok(path),
    }
}

#[derive(Default)]
struct State {
    key: Option<Key>,
    cache: Option<Cache>,
}

/// The last document this process decrypted or wrote, and the exact ciphertext it came from.
struct Cache {
    ciphertext: Vec<u8>,
    doc: Document,
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the state cannot leave it half-updated in a way that matters:
        // the cache is only ever replaced whole. Carry on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error::new(kind, self.describe.clone(), detail)
    }

    /// The store is missing: create it, or point at an existing one.
    fn with_init_fix(e: Error) -> Error {
        e.with_hint("(or point SITEPORT_CREDENTIALS_FILE at an existing store)")
            .with_remedy_first(Remedy::InitStore, " ")
    }

    fn no_store_no_identity(&self) -> Error {
        Self::with_init_fix(self.err(
            ErrorKind::NotFound,
            format!(
                "store {} does not exist and there is no identity at {}",
                self.store.display(),
                self.identity.display()
            ),
        ))
    }

    fn read_store(&self) -> Result<Option<Vec<u8>>> {
        match fsio::open_private(&self.store, "store", &self.describe)? {
            None => Ok(None),
            // The ciphertext is not secret: take it out of its `Zeroizing` wrapper rather
            // than copying it.
            Some(f) => crypto::read_all(f)
                .map(|mut b| Some(std::mem::take(&mut *b)))
                .map_err(|e| fsio::io_error(&self.describe, "read store", &self.store, &e)),
        }
    }

    /// Brings the cache up to date with the file on disk; `false` if there is no store.
    fn refresh(&self, state: &mut State) -> Result<bool> {
        self.refresh_accepting(state, self.accept_recipients)
    }

    /// [`refresh`](Self::refresh); `accept` takes a store whose recipients changed.
    fn refresh_accepting(&self, state: &mut State, accept: bool) -> Result<bool> {
        let Some(bytes) = self.read_store()? else {
            state.cache = None;
            return Ok(false);
        };
        if state.cache.as_ref().is_some_and(|c| c.ciphertext == bytes) {
            return Ok(true);
        }
        // Before any key is used: a store re-encrypted by someone else is not opened at all.
        let verdict = if crypto::header_is_passphrase(&bytes, &self.describe, &self.store)? {
            recipients::Verdict::Unchecked
        } else {
            self.check_recipients(&bytes, accept)?
        };
        let doc = self.decrypt_with_state(state, &bytes)?;
        match verdict {
            recipients::Verdict::Record(kinds) => self.record_recipients(kinds, &doc.recipients),
            recipients::Verdict::Known(recorded) => {
                if self.check_listed(&recorded, &doc.recipients, accept)?
                    && let Some(kinds) = crypto::stanza_kinds(&bytes)
                {
                    self.record_recipients(kinds, &doc.recipients);
                }
            }
            recipients::Verdict::Unchecked => {}
        }
        state.cache = Some(Cache {
            ciphertext: bytes,
            doc,
        });
        Ok(true)
    }

    fn with_doc<T>(&self, f: impl FnOnce(Option<&Document>) -> Result<T>) -> Result<T> {
        let mut state = self.lock_state();
        self.refresh(&mut state)?;
        f(state.cache.as_ref().map(|c| &c.doc))
    }

    /// Read-modify-write under the store lock. `f` works on a copy, so a failure anywhere
    /// leaves both the file and the cache as they were.
    fn modify<T>(&self, f: impl FnOnce(&mut Document) -> Result<T>) -> Result<T> {
        if !self.store.exists() && !self.identity.exists() {
            // Fail before creating any directory or lock file for a store that cannot exist.
            return Err(self.no_store_no_identity());
        }
        if let Some(parent) = self.store.parent() {
            fsio::ensure_dir(parent, &self.describe)?;
        }
        let mut state = self.lock_state();
        let _lock = fsio::StoreLock::acquire(&self.store, self.lock_timeout, &self.describe)?;
        fsio::remove_stale_temps(&self.store);
        let mut doc = if self.refresh(&mut state)? {
            match &state.cache {
                Some(c) => c.doc.duplicate(),
                None => return Err(self.err(ErrorKind::Corrupt, "store vanished while locked")),
            }
        } else {
            // No store yet: create it in identity mode, which needs an identity.
            let ids = self
                .load_identity()?
                .ok_or_else(|| self.no_store_no_identity())?;
            let key = Key::Identity(ids);
            let doc = Document::new(key.public_keys());
            state.key = Some(key);
            doc
        };
        let out = f(&mut doc)?;
        let st = &mut *state;
        let key = st
            .key
            .as_ref()
            .ok_or_else(|| self.err(ErrorKind::BadKey, "no key"))?;
        self.write_doc(&mut st.cache, key, doc)?;
        Ok(out)
    }

    /// Encrypts and atomically writes `doc`, then caches it. Identity mode always keeps the
    /// owner's own keys among the recipients so a rewrite can never lock the owner out.
    fn write_doc(&self, slot: &mut Option<Cache>, key: &Key, mut doc: Document) -> Result<()> {
        let mut recipients = key.public_keys();
        for r in &doc.recipients {
            if !recipients.contains(r) {
                recipients.push(r.clone());
            }
        }
        doc.recipients = if key.is_passphrase() {
            Vec::new()
        } else {
            recipients
        };
        let plaintext = doc.to_plaintext();
        let ciphertext = crypto::encrypt(&plaintext, key, &doc.recipients, &self.describe)?;
        fsio::atomic_write(&self.store, &ciphertext, &self.describe)?;
        if !key.is_passphrase() {
            self.record_written(&ciphertext, &doc.recipients);
        }
        *slot = Some(Cache { ciphertext, doc });
        Ok(())
    }
    fn check(&self) -> Result<Health> {
        let mut h = Health::default();
        let mut state = self.lock_state();
        let identity_exists = self.identity.exists();
        if !self.refresh(&mut state)? {
            h.notes.push(format!(
                "store {} does not exist yet; create it with `siteport credential init`",
                self.store.display()
            ));
            if identity_exists {
                // Surface unsafe permissions or a broken identity now, not at first write.
                self.require_identity()?;
                h.notes
                    .push(format!("identity {} is usable", self.identity.display()));
            }
            return Ok(h);
        }
        let (count, recipients) = state
            .cache
            .as_ref()
            .map(|c| (c.doc.credentials.len(), c.doc.recipients.len()))
            .unwrap_or_default();
        match &state.key {
            Some(k) if k.is_passphrase() => {
                h.notes
                    .push("passphrase mode (age scrypt); unlocked".into());
            }
            _ => h.notes.push(format!(
                "identity mode; unlocked with {}; encrypted to {recipients} recipient{}",
                self.identity.display(),
                if recipients == 1 { "" } else { "s" }
            )),
        }
        h.notes.push(format!(
            "{count} credential{}",
            if count == 1 { "" } else { "s" }
        ));
        h.notes.push("file permissions ok (0600)".into());
        Ok(h)
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

#[async_trait]
impl CredentialBackend for FileBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::File
    }

    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    fn is_writable(&self) -> bool {
        true
    }

    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        let name = name.clone();
        self.blocking(move |inner| {
            inner.with_doc(|doc| {
                let Some(doc) = doc else {
                    return Err(Error::not_found(inner.describe.clone(), &name)
                        .with_hint(format!(
                            "the store {} does not exist yet",
                            inner.store.display()
                        ))
                        .with_remedy(Remedy::InitStoreThenAdd(name.clone())));
                };
                let rec = doc
                    .credentials
                    .get(&name)
                    .ok_or_else(|| Error::not_found(inner.describe.clone(), &name))?;
                rec.to_credential(&name).map_err(|e| {
                    inner
                        .err(
                            ErrorKind::Corrupt,
                            format!("credential '{name}' in the store is invalid: {e}"),
                        )
                        .with_remedy(Remedy::ReplaceCredential(name.clone()))
                })
            })
        })
        .await
    }

    async fn store(&self, cred: &Credential, mode: StoreMode) -> Result<()> {
        let cred = cred.clone();
        self.blocking(move |inner| {
            inner.modify(|doc| {
                let existing = doc.credentials.get(cred.name());
                if existing.is_some() && mode == StoreMode::CreateNew {
                    return Err(Error::already_exists(inner.describe.clone(), cred.name()));
                }
                let created = existing.and_then(|r| r.created);
                let rec = Record::from_credential(&cred, created, now());
                doc.credentials.insert(cred.name().clone(), rec);
                Ok(())
            })
        })
        .await
    }

    async fn delete(&self, name: &CredentialName) -> Result<()> {
        let name = name.clone();
        self.blocking(move |inner| {
            if inner.read_store()?.is_none() {
                return Err(Error::not_found(inner.describe.clone(), &name));
            }
            inner.modify(|doc| {
                doc.credentials
                    .remove(&name)
                    .map(drop)
                    .ok_or_else(|| Error::not_found(inner.describe.clone(), &name))
            })
        })
        .await
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        self.blocking(|inner| {
            inner.with_doc(|doc| {
                Ok(match doc {
                    None => {
                        tracing::info!(
                            store = %inner.store.display(),
                            "credential store does not exist yet; `siteport credential init` creates it"
                        );
                        Vec::new()
                    }
                    Some(doc) => doc
                        .credentials
                        .iter()
                        .map(|(name, rec)| rec.info(name))
                        .collect(),
                })
            })
        })
        .await
    }

    async fn check(&self) -> Result<Health> {
        self.blocking(|inner| inner.check()).await
    }
}

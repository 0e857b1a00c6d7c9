//! The `keychain` backend: the OS keychain through the `keyring` crate (macOS Keychain,
//! Windows Credential Manager; on Linux the Secret Service, e.g. GNOME Keyring or KeePassXC, or
//! the kernel's keyutils store as a headless fallback).
//!
//! One entry per credential (service `siteport`, account = the credential's name) holds a JSON
//! object with `username`, `password`, `host`, `port`, `created` and `updated`. Keychains cannot
//! enumerate entries, so an index entry (account `_index`, which no credential name can be since
//! names start with a letter or digit) lists the names; `list` skips names whose entry vanished.
//!
//! The kernel keyutils store lives in memory only (lost at reboot, scoped to the session
//! keyring); use it for headless sessions, not as the only copy of a password.
//!
//! Every keychain call runs on the blocking pool: the Secret Service client blocks on D-Bus.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};
use crate::remedy::Remedy;

/// Default keychain service name.
pub const DEFAULT_SERVICE: &str = "siteport";
/// Account of the index entry.
pub const INDEX_ACCOUNT: &str = "_index";

/// `[credentials.keychain]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeychainSettings {
    /// `auto` (default), `secret-service` or `keyutils` (Linux only; elsewhere the platform's
    /// keychain is always used).
    pub store: Option<String>,
    /// The service name entries are filed under (default `siteport`).
    pub service: Option<String>,
}

/// Which keychain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeychainStore {
    /// The platform default: macOS Keychain, Windows Credential Manager; on Linux the Secret
    /// Service when a D-Bus session exists, else keyutils.
    Auto,
    /// The freedesktop Secret Service over D-Bus (Linux).
    SecretService,
    /// The kernel keyutils session keyring (Linux).
    Keyutils,
}

impl KeychainStore {
    fn label(self) -> &'static str {
        match self {
            KeychainStore::Auto => "platform keychain",
            KeychainStore::SecretService => "secret service",
            KeychainStore::Keyutils => "keyutils",
        }
    }
}

/// Credentials in the OS keychain. Holds no secret itself.
#[derive(Clone)]
pub struct KeychainBackend {
    store: KeychainStore,
    service: String,
    /// Serialises read-modify-write of the index within this process.
    lock: Arc<Mutex<()>>,
}

impl fmt::Debug for KeychainBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeychainBackend")
            .field("store", &self.store)
            .field("service", &self.service)
            .finish()
    }
}

impl KeychainBackend {
    /// A backend on `store`, filing entries under `service`.
    pub fn new(store: KeychainStore, service: impl Into<String>) -> Self {
        let store = match store {
            KeychainStore::Auto if cfg!(target_os = "linux") => {
                if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
                    KeychainStore::SecretService
                } else {
                    KeychainStore::Keyutils
                }
            }
            s => s,
        };
        Self {
            store,
            service: service.into(),
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The backend from `[credentials.keychain]`.
    pub fn from_settings(settings: &KeychainSettings) -> Result<Self> {
        let store = match settings.store.as_deref().unwrap_or("auto") {
            "auto" => KeychainStore::Auto,
            "secret-service" => KeychainStore::SecretService,
            "keyutils" => KeychainStore::Keyutils,
            other => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    "keychain backend",
                    format!("unknown keychain store '{other}'"),
                )
                .with_hint(
                    "set [credentials.keychain] store to \"auto\", \"secret-service\" or \"keyutils\"",
                ));
            }
        };
        let service = settings
            .service
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_SERVICE.to_owned());
        Ok(Self::new(store, service))
    }

    /// The store actually used (`Auto` resolved on Linux).
    pub fn keychain_store(&self) -> KeychainStore {
        self.store
    }

    fn entry(&self, account: &str) -> Result<keyring::Entry> {
        #[cfg(target_os = "linux")]
        let made = match self.store {
            KeychainStore::SecretService => {
                keyring::secret_service::SsCredential::new_with_target(None, &self.service, account)
                    .map(|c| keyring::Entry::new_with_credential(Box::new(c)))
            }
            KeychainStore::Keyutils => {
                keyring::keyutils::KeyutilsCredential::new_with_target(None, &self.service, account)
                    .map(|c| keyring::Entry::new_with_credential(Box::new(c)))
            }
            KeychainStore::Auto => keyring::Entry::new(&self.service, account),
        };
        #[cfg(not(target_os = "linux"))]
        let made = keyring::Entry::new(&self.service, account);
        made.map_err(|e| self.map_err(e, &format!("cannot open entry '{account}'")))
    }

    fn map_err(&self, e: keyring::Error, what: &str) -> Error {
        let (kind, hint) = match &e {
            keyring::Error::NoStorageAccess(_) => (
                ErrorKind::PermissionDenied,
                "unlock the keychain (e.g. log in to the desktop session, or unlock GNOME Keyring)",
            ),
            keyring::Error::PlatformFailure(_) => (
                ErrorKind::Unavailable,
                "check that the keychain service runs (on Linux: a D-Bus session with \
                 gnome-keyring-daemon, or set [credentials.keychain] store = \"keyutils\")",
            ),
            keyring::Error::BadEncoding(_) => (
                ErrorKind::Corrupt,
                "the entry was not written by siteport; delete it with your keychain tool",
            ),
            keyring::Error::Ambiguous(_) => (
                ErrorKind::Corrupt,
                "several keychain items match; remove the duplicates with your keychain tool",
            ),
            _ => (ErrorKind::Invalid, "check [credentials.keychain]"),
        };
        // keyring's messages name the platform call, never a stored value.
        Error::new(kind, self.describe(), format!("{what}: {e}")).with_hint(hint)
    }

    /// Runs keychain work on the blocking pool (D-Bus calls block), one at a time.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&KeychainBackend) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        let describe = self.describe();
        tokio::task::spawn_blocking(move || {
            let _guard = me.lock.lock().unwrap_or_else(|p| p.into_inner());
            f(&me)
        })
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                describe,
                format!("keychain task failed: {e}"),
            )
        })?
    }

    fn read(&self, account: &str) -> Result<Option<Zeroizing<String>>> {
        match self.entry(account)?.get_password() {
            Ok(p) => Ok(Some(Zeroizing::new(p))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(self.map_err(e, &format!("cannot read entry '{account}'"))),
        }
    }

    fn write(&self, account: &str, value: &str) -> Result<()> {
        self.entry(account)?
            .set_password(value)
            .map_err(|e| self.map_err(e, &format!("cannot write entry '{account}'")))
    }

    fn index(&self) -> Result<Vec<String>> {
        match self.read(INDEX_ACCOUNT)? {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str::<Vec<String>>(&text).map_err(|e| {
                Error::new(
                    ErrorKind::Corrupt,
                    self.describe(),
                    format!("the index entry '{INDEX_ACCOUNT}' is not a JSON list of names: {e}"),
                )
                .with_hint(format!(
                    "delete the '{INDEX_ACCOUNT}' entry of service '{}' with your keychain tool; \
                     credentials stay readable by name",
                    self.service
                ))
            }),
        }
    }

    fn set_index(&self, mut names: Vec<String>) -> Result<()> {
        names.sort();
        names.dedup();
        let text = serde_json::to_string(&names).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                self.describe(),
                format!("cannot encode the index: {e}"),
            )
        })?;
        self.write(INDEX_ACCOUNT, &text)
    }

    fn decode(&self, name: &CredentialName, text: &str) -> Result<Credential> {
        let corrupt = |why: String| {
            Error::new(
                ErrorKind::Corrupt,
                self.describe(),
                format!("entry '{name}' is not a siteport credential: {why}"),
            )
            .with_remedy(Remedy::RewriteCredential(Some(name.clone())))
        };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| corrupt(format!("bad JSON at {}:{}", e.line(), e.column())))?;
        let field = |k: &str| v.get(k).and_then(Value::as_str);
        let username = field("username").ok_or_else(|| corrupt("no 'username'".into()))?;
        let password = field("password").ok_or_else(|| corrupt("no 'password'".into()))?;
        let invalid = |e| Error::invalid(self.describe(), e);
        let secret = |k: &str| field(k).map(|s| SecretString::from(s.to_owned()));
        let mut c = Credential::from_parts(
            name.clone(),
            username,
            Some(SecretString::from(password.to_owned())),
            secret("ssh_key"),
            secret("ssh_key_passphrase"),
        )
        .map_err(invalid)?;
        if let Some(h) = field("host") {
            c = c.with_host(h).map_err(invalid)?;
        }
        if let Some(p) = v.get("port").and_then(Value::as_u64) {
            let p = u16::try_from(p).map_err(|_| corrupt("'port' out of range".into()))?;
            c = c.with_port(p).map_err(invalid)?;
        }
        let ts = |k: &str| field(k).and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
        Ok(c.with_times(ts("created"), ts("updated")))
    }

    fn get_sync(&self, name: &CredentialName) -> Result<Credential> {
        match self.read(name.as_str())? {
            Some(text) => self.decode(name, &text),
            None => Err(Error::not_found(self.describe(), name)),
        }
    }
}

fn now_text() -> Option<String> {
    OffsetDateTime::now_utc().format(&Rfc3339).ok()
}

#[async_trait]
impl CredentialBackend for KeychainBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Keychain
    }

    fn describe(&self) -> String {
        format!(
            "keychain backend ({}, service '{}')",
            self.store.label(),
            self.service
        )
    }

    fn is_writable(&self) -> bool {
        true
    }

    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        let name = name.clone();
        self.blocking(move |b| b.get_sync(&name)).await
    }

    async fn store(&self, cred: &Credential, mode: StoreMode) -> Result<()> {
        let cred = cred.clone();
        self.blocking(move |b| {
            let name = cred.name();
            let old = match b.get_sync(name) {
                Ok(c) => Some(c),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                // A corrupt old entry may be replaced, but never silently kept on CreateNew.
                Err(e) if mode == StoreMode::Replace && e.kind() == ErrorKind::Corrupt => None,
                Err(e) => return Err(e),
            };
            if old.is_some() && mode == StoreMode::CreateNew {
                return Err(Error::already_exists(b.describe(), name));
            }
            let now = now_text();
            let created = old
                .as_ref()
                .and_then(|c| c.created())
                .and_then(|t| t.format(&Rfc3339).ok())
                .or_else(|| now.clone());
            let payload = Zeroizing::new(
                json!({
                    "username": cred.username(),
                    "password": cred.password().expose_secret(),
                    "host": cred.host(),
                    "port": cred.port(),
                    "ssh_key": cred.ssh_key().map(|k| k.expose_secret()),
                    "ssh_key_passphrase": cred.ssh_key_passphrase().map(|p| p.expose_secret()),
                    "created": created,
                    "updated": now,
                })
                .to_string(),
            );
            b.write(name.as_str(), &payload)?;
            let mut names = b.index()?;
            if !names.iter().any(|n| n == name.as_str()) {
                names.push(name.as_str().to_owned());
                b.set_index(names)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, name: &CredentialName) -> Result<()> {
        let name = name.clone();
        self.blocking(move |b| {
            let deleted = match b.entry(name.as_str())?.delete_credential() {
                Ok(()) => true,
                Err(keyring::Error::NoEntry) => false,
                Err(e) => return Err(b.map_err(e, &format!("cannot delete entry '{name}'"))),
            };
            let names = b.index()?;
            if names.iter().any(|n| n == name.as_str()) {
                b.set_index(names.into_iter().filter(|n| n != name.as_str()).collect())?;
            }
            if deleted {
                Ok(())
            } else {
                Err(Error::not_found(b.describe(), &name))
            }
        })
        .await
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        self.blocking(|b| {
            let mut out = Vec::new();
            for n in b.index()? {
                let Ok(name) = CredentialName::new(&n) else {
                    continue;
                };
                match b.get_sync(&name) {
                    Ok(c) => out.push(CredentialInfo::of(&c, BackendKind::Keychain)),
                    // Removed behind our back (another tool): the index is only a hint.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            out.dedup_by(|a, b| a.name == b.name);
            Ok(out)
        })
        .await
    }

    async fn check(&self) -> Result<Health> {
        self.blocking(|b| {
            let n = b.index()?.len();
            let mut notes = vec![format!("{n} credential(s) in the index")];
            if b.store == KeychainStore::Keyutils {
                notes.push(
                    "keyutils keeps entries in kernel memory only: they are lost at reboot".into(),
                );
            }
            Ok(Health { notes })
        })
        .await
    }
}

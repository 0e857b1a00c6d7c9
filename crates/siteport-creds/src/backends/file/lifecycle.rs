//! Creating a store (`credential init`) and changing its keys (`credential rekey`).

use secrecy::{ExposeSecret, SecretString};

use crate::error::{ErrorKind, Result};
use crate::remedy::Remedy;

use super::crypto::{self, Key};
use super::document::Document;

use super::{InitOptions, InitReport, Inner, KeyMode, RekeyOptions, RekeyReport, fsio};

impl Inner {
    pub(super) fn init(&self, opts: InitOptions) -> Result<InitReport> {
        let extras = self.parse_recipients(&opts.recipients)?;
        if opts.mode == KeyMode::Passphrase && !extras.is_empty() {
            return Err(self
                .err(
                    ErrorKind::Invalid,
                    "a passphrase store cannot also have recipients (age does not mix them)",
                )
                .with_hint("use identity mode (the default) to share the store with recipients"));
        }
        if let Some(parent) = self.store.parent() {
            fsio::ensure_dir(parent, &self.describe)?;
        }
        let mut state = self.lock_state();
        let _lock = fsio::StoreLock::acquire(&self.store, self.lock_timeout, &self.describe)?;
        let existing = self.read_store()?;
        if existing.is_some() && !opts.force {
            return Err(self
                .err(
                    ErrorKind::AlreadyExists,
                    format!("store {} already exists", self.store.display()),
                )
                .with_remedy(Remedy::RekeyOrReinit));
        }
        let (key, identity_created) = match opts.mode {
            KeyMode::Identity => match self.load_identity()? {
                Some(ids) => (Key::Identity(ids), false),
                None => {
                    let (id, text) = crypto::generate_identity();
                    if let Some(parent) = self.identity.parent() {
                        fsio::ensure_dir(parent, &self.describe)?;
                    }
                    fsio::atomic_write(&self.identity, text.as_bytes(), &self.describe)?;
                    (Key::Identity(vec![id]), true)
                }
            },
            KeyMode::Passphrase => (Key::Passphrase(self.obtain_passphrase(true, false)?), false),
        };
        let mut backups = Vec::new();
        if let Some(old) = &existing {
            backups.push(fsio::write_backup(&self.store, old, &self.describe)?);
        }
        let doc = Document::new(extras);
        let public_key = key.public_keys().into_iter().next();
        self.write_doc(&mut state.cache, &key, doc)?;
        state.key = Some(key);
        Ok(InitReport {
            store: self.store.clone(),
            identity: (opts.mode == KeyMode::Identity).then(|| self.identity.clone()),
            public_key,
            mode: opts.mode,
            identity_created,
            backups,
        })
    }

    pub(super) fn parse_recipients(&self, list: &[String]) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for r in list {
            let r = crypto::parse_recipient(r).map_err(|e| {
                self.err(ErrorKind::Invalid, e)
                    .with_hint("give an age public key (age1…) or an SSH public key line")
            })?;
            if !out.contains(&r) {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub(super) fn rekey(
        &self,
        opts: RekeyOptions,
        new_passphrase: Option<SecretString>,
    ) -> Result<RekeyReport> {
        let extras_given = opts
            .recipients
            .as_deref()
            .map(|r| self.parse_recipients(r))
            .transpose()?;
        if opts.mode == KeyMode::Passphrase {
            if extras_given.as_ref().is_some_and(|r| !r.is_empty()) {
                return Err(self.err(
                    ErrorKind::Invalid,
                    "a passphrase store cannot also have recipients (age does not mix them)",
                ));
            }
            if opts.new_identity {
                return Err(self.err(
                    ErrorKind::Invalid,
                    "a new identity makes no sense for a passphrase store",
                ));
            }
        }
        let mut state = self.lock_state();
        let _lock = fsio::StoreLock::acquire(&self.store, self.lock_timeout, &self.describe)?;
        fsio::remove_stale_temps(&self.store);
        // A rekey is the owner's say on the recipients: a changed set is taken, then rewritten.
        if !self.refresh_accepting(&mut state, true)? {
            return Err(Self::with_init_fix(self.err(
                ErrorKind::NotFound,
                format!("store {} does not exist", self.store.display()),
            )));
        }
        let (old_ciphertext, doc, old_own) = match (&state.cache, &state.key) {
            (Some(c), Some(k)) => (c.ciphertext.clone(), c.doc.duplicate(), k.public_keys()),
            _ => return Err(self.err(ErrorKind::BadKey, "store is not unlocked")),
        };
        let was_passphrase = state.key.as_ref().is_some_and(Key::is_passphrase);

        let mut identity_backup = None;
        let new_key = match opts.mode {
            KeyMode::Passphrase => {
                let p = match new_passphrase {
                    Some(p) if !p.expose_secret().is_empty() => p,
                    _ if !was_passphrase => self.obtain_passphrase(true, true)?,
                    _ => self.prompt_passphrase(true, true)?,
                };
                Key::Passphrase(p)
            }
            KeyMode::Identity if opts.new_identity => Key::Identity(Vec::new()),
            KeyMode::Identity => match self.load_identity()? {
                Some(ids) => Key::Identity(ids),
                None => Key::Identity(Vec::new()),
            },
        };
        // Back up the store before touching any key material.
        let backup = fsio::write_backup(&self.store, &old_ciphertext, &self.describe)?;
        let new_key = match new_key {
            Key::Identity(ids) if ids.is_empty() => {
                // Generate; the old identity file (if any) is backed up first and the new one
                // written before the store, so no moment exists where the store is encrypted to
                // a key that is not on disk.
                if let Some(f) =
                    fsio::open_private(&self.identity, "identity file", &self.describe)?
                {
                    let bytes = crypto::read_all(f).map_err(|e| {
                        fsio::io_error(&self.describe, "read identity file", &self.identity, &e)
                    })?;
                    identity_backup =
                        Some(fsio::write_backup(&self.identity, &bytes, &self.describe)?);
                }
                let (id, text) = crypto::generate_identity();
                if let Some(parent) = self.identity.parent() {
                    fsio::ensure_dir(parent, &self.describe)?;
                }
                fsio::atomic_write(&self.identity, text.as_bytes(), &self.describe)?;
                Key::Identity(vec![id])
            }
            k => k,
        };
        let mut doc = doc;
        doc.recipients = match (&new_key, extras_given) {
            (Key::Passphrase(_), _) => Vec::new(),
            (_, Some(given)) => given,
            // Keep the extra recipients, minus the keys being replaced.
            (_, None) => doc
                .recipients
                .iter()
                .filter(|r| !old_own.contains(r))
                .cloned()
                .collect(),
        };
        self.write_doc(&mut state.cache, &new_key, doc)?;
        let recipients = state
            .cache
            .as_ref()
            .map(|c| c.doc.recipients.clone())
            .unwrap_or_default();
        let public_key = new_key.public_keys().into_iter().next();
        let mode = if new_key.is_passphrase() {
            KeyMode::Passphrase
        } else {
            KeyMode::Identity
        };
        state.key = Some(new_key);
        Ok(RekeyReport {
            store: self.store.clone(),
            backup,
            mode,
            public_key,
            identity_backup,
            recipients,
        })
    }
}

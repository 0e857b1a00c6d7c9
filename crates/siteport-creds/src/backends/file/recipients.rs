//! The store's recipient set, remembered outside the store.
//!
//! Anyone who can write the store file can encrypt a document of their own to the owner's
//! public key plus a key of theirs: the owner's identity opens it, and every later write would
//! encrypt the owner's passwords to the intruder too. The owner's identity cannot tell who
//! else a file is encrypted to (an X25519 stanza names no key), but it can count: after every
//! write, siteport records beside the identity (`<identity>.recipients`, 0600, outside the
//! store) the kinds of the recipient stanzas it wrote (see [`crypto::stanza_kinds`]), and
//! before decrypting a store it compares. A store whose stanzas differ from the record (an
//! extra recipient, one of another kind) is refused, and nothing is decrypted or re-encrypted,
//! unless `--accept-recipients` or `credential rekey` says to take it; then the new set is
//! recorded. A store seen for the first time is recorded as it is (trust on first use).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result};

use super::crypto;
use super::{Inner, fsio};

/// The record file: one entry per store this identity has opened.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    version: u32,
    stores: BTreeMap<PathBuf, Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// The stanza kinds of the store as this identity last wrote or accepted it.
    stanzas: Vec<String>,
    /// The recipients siteport encrypted to (identity mode), for people reading the file.
    recipients: Vec<String>,
}

/// What [`Inner::check_recipients`] found.
pub(super) enum Verdict {
    /// The store's stanzas are the recorded ones; the recipients recorded with them, which the
    /// decrypted document must list (see [`Inner::check_listed`]).
    Known(Vec<String>),
    /// No record yet, or a changed set that was accepted: record it once the store opened.
    Record(Vec<String>),
    /// Nothing to compare: a passphrase store (one scrypt stanza by the format), or a header
    /// that cannot be read (decryption then reports the damage).
    Unchecked,
}

impl Inner {
    fn record_path(&self) -> PathBuf {
        let mut p = self.identity.as_os_str().to_owned();
        p.push(".recipients");
        PathBuf::from(p)
    }

    fn load_record(&self) -> Result<Record> {
        let path = self.record_path();
        let Some(f) = fsio::open_private(&path, "recipient record", &self.describe)? else {
            return Ok(Record::default());
        };
        let bytes =
            crypto::read_all(f).map_err(|e| fsio::io_error(&self.describe, "read", &path, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            self.err(
                ErrorKind::Corrupt,
                format!("recipient record {} is damaged: {e}", path.display()),
            )
            .with_hint(format!(
                "delete {} (the next command records the store's recipients as they are now)",
                path.display()
            ))
        })
    }

    /// Compares the stanzas of `ciphertext` (identity mode) with the record. A change is an
    /// error unless `accept` (`--accept-recipients`, `credential rekey`).
    pub(super) fn check_recipients(&self, ciphertext: &[u8], accept: bool) -> Result<Verdict> {
        let Some(found) = crypto::stanza_kinds(ciphertext) else {
            return Ok(Verdict::Unchecked);
        };
        let record = self.load_record()?;
        let Some(known) = record.stores.get(&self.store) else {
            return Ok(Verdict::Record(found));
        };
        if known.stanzas == found {
            return Ok(Verdict::Known(known.recipients.clone()));
        }
        if accept {
            tracing::warn!(
                store = %self.store.display(),
                "the store's recipients changed since this identity last wrote it ({} before, \
                 {} now); accepted as asked",
                describe(&known.stanzas),
                describe(&found)
            );
            return Ok(Verdict::Record(found));
        }
        Err(self.changed(format!(
            "{} before, {} now",
            describe(&known.stanzas),
            describe(&found)
        )))
    }

    /// After decryption, when the stanzas were the recorded ones: the document's recipient
    /// list (to whom siteport encrypts every later write) must be the recorded one. Someone who
    /// swapped one X25519 recipient for their own and listed it would otherwise be written to
    /// from then on. Order does not matter (each writer puts its own key first).
    pub(super) fn check_listed(
        &self,
        recorded: &[String],
        listed: &[String],
        accept: bool,
    ) -> Result<bool> {
        let mut a: Vec<&String> = recorded.iter().collect();
        let mut b: Vec<&String> = listed.iter().collect();
        a.sort();
        a.dedup();
        b.sort();
        b.dedup();
        if a == b {
            return Ok(false);
        }
        let added: Vec<&str> = b
            .iter()
            .filter(|r| !a.contains(r))
            .map(|r| r.as_str())
            .collect();
        if added.is_empty() || accept {
            // Fewer recipients harm nobody; a rekey or an accepted change is recorded.
            return Ok(true);
        }
        Err(self.changed(format!("it now lists {}", added.join(", "))))
    }

    fn changed(&self, what: String) -> crate::error::Error {
        self.err(
            ErrorKind::Corrupt,
            format!(
                "store {} is encrypted to other recipients than when {} last wrote it ({what}): \
                 someone else re-encrypted it, and siteport would encrypt every later password \
                 to them too; nothing was changed",
                self.store.display(),
                self.identity.display(),
            ),
        )
        .with_hint(format!(
            "if you (or a teammate) changed the recipients, rerun with --accept-recipients \
                 or run `siteport credential rekey`; otherwise restore the store from a backup \
                 ({}.bak-*) and find out who can write it",
            self.store.display()
        ))
    }

    /// Records `stanzas` and `recipients` as this store's set, when they differ from the
    /// record. Written atomically beside the identity. A failure (a read-only identity
    /// directory) is a warning: the store itself was fine, only the next check is weaker.
    pub(super) fn record_recipients(&self, stanzas: Vec<String>, recipients: &[String]) {
        if let Err(e) = self.try_record(stanzas, recipients) {
            tracing::warn!(
                "cannot record the store's recipients beside {}: {e}; a store re-encrypted to \
                 other recipients would not be noticed",
                self.identity.display()
            );
        }
    }

    fn try_record(&self, stanzas: Vec<String>, recipients: &[String]) -> Result<()> {
        let mut record = self.load_record()?;
        let entry = Entry {
            stanzas,
            recipients: recipients.to_vec(),
        };
        if record.stores.get(&self.store) == Some(&entry) {
            return Ok(());
        }
        record.version = 1;
        record.stores.insert(self.store.clone(), entry);
        let bytes = serde_json::to_vec_pretty(&record)
            .map_err(|e| self.err(ErrorKind::Unavailable, format!("recipient record: {e}")))?;
        let path = self.record_path();
        if let Some(parent) = path.parent() {
            fsio::ensure_dir(parent, &self.describe)?;
        }
        fsio::atomic_write(&path, &bytes, &self.describe)
    }

    /// After a write in identity mode: records what was written.
    pub(super) fn record_written(&self, ciphertext: &[u8], recipients: &[String]) {
        if let Some(kinds) = crypto::stanza_kinds(ciphertext) {
            self.record_recipients(kinds, recipients);
        }
    }
}

/// `2 recipients (X25519 ×2)`, for messages.
fn describe(kinds: &[String]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for k in kinds {
        *counts.entry(k.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(k, n)| {
            if *n == 1 {
                (*k).to_owned()
            } else {
                format!("{k} ×{n}")
            }
        })
        .collect();
    format!(
        "{} recipient{} ({})",
        kinds.len(),
        if kinds.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

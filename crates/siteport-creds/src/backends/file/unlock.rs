//! Unlocking the store: the identity file, the passphrase (variable, command or prompt),
//! and decrypting with whichever key the store needs.

use std::process::{Command, Stdio};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{ErrorKind, Result};
use crate::remedy::Remedy;

use super::crypto::{self, Key};
use super::document::Document;

use super::{Inner, State, fsio};

impl Inner {
    /// The identities in the identity file, or `None` if it does not exist.
    pub(super) fn load_identity(&self) -> Result<Option<Vec<age::x25519::Identity>>> {
        let Some(f) = fsio::open_private(&self.identity, "identity file", &self.describe)? else {
            return Ok(None);
        };
        let bytes = crypto::read_all(f).map_err(|e| {
            fsio::io_error(&self.describe, "read identity file", &self.identity, &e)
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            self.err(
                ErrorKind::BadKey,
                format!(
                    "identity file {} is not UTF-8 text",
                    self.identity.display()
                ),
            )
        })?;
        crypto::parse_identity_file(text, &self.describe, &self.identity).map(Some)
    }

    pub(super) fn require_identity(&self) -> Result<Vec<age::x25519::Identity>> {
        self.load_identity()?.ok_or_else(|| {
            self.err(
                ErrorKind::BadKey,
                format!("identity file {} does not exist", self.identity.display()),
            )
            .with_hint(format!(
                "set SITEPORT_IDENTITY_FILE to the identity that opens {}",
                self.store.display()
            ))
            .with_remedy_first(Remedy::InitStoreAndIdentity, ", or ")
        })
    }

    /// The passphrase from `SITEPORT_PASSPHRASE`, then `passphrase_command`, then the prompter
    /// (asked twice when `confirm`).
    pub(super) fn obtain_passphrase(&self, confirm: bool, new: bool) -> Result<SecretString> {
        if let Some(p) = &self.env_passphrase {
            return Ok(p.clone());
        }
        if let Some(cmd) = &self.passphrase_command {
            return self.run_passphrase_command(cmd);
        }
        self.prompt_passphrase(confirm, new)
    }

    pub(super) fn prompt_passphrase(&self, confirm: bool, new: bool) -> Result<SecretString> {
        let what = if new { "New passphrase" } else { "Passphrase" };
        let first = self
            .prompter
            .secret(&format!("{what} for {}: ", self.store.display()))
            .filter(|p| !p.expose_secret().is_empty())
            .ok_or_else(|| {
                self.err(
                    ErrorKind::BadKey,
                    format!(
                        "store {} is passphrase-protected and no passphrase was given",
                        self.store.display()
                    ),
                )
                .with_hint(
                    "set SITEPORT_PASSPHRASE, or `[credentials.file] passphrase_command`, or run \
                     in a terminal to be prompted",
                )
            })?;
        if confirm {
            let again = self.prompter.secret(&format!(
                "Confirm {} for {}: ",
                what.to_lowercase(),
                self.store.display()
            ));
            if again.as_ref().map(|a| a.expose_secret()) != Some(first.expose_secret()) {
                return Err(self.err(ErrorKind::Invalid, "the passphrases do not match"));
            }
        }
        Ok(first)
    }

    pub(super) fn run_passphrase_command(&self, cmd: &str) -> Result<SecretString> {
        let fail = |detail: String| {
            self.err(ErrorKind::BadKey, detail).with_hint(
                "fix `[credentials.file] passphrase_command` (it runs under `sh -c` and must \
                 print the passphrase on stdout), or set SITEPORT_PASSPHRASE",
            )
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::inherit())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| fail(format!("cannot run passphrase_command with sh: {e}")))?;
        let stdout = Zeroizing::new(out.stdout);
        if !out.status.success() {
            return Err(fail(format!("passphrase_command failed ({})", out.status)));
        }
        let mut text = std::str::from_utf8(&stdout)
            .map_err(|_| fail("passphrase_command printed something that is not UTF-8".into()))?;
        text = text.strip_suffix('\n').unwrap_or(text);
        text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            return Err(fail(
                "passphrase_command printed an empty passphrase".into(),
            ));
        }
        Ok(SecretString::from(text.to_owned()))
    }

    /// A key able to open `ciphertext`: the cached one if its mode fits, else a fresh one.
    pub(super) fn key_for(&self, state: &mut State, ciphertext: &[u8]) -> Result<()> {
        let passphrase = crypto::header_is_passphrase(ciphertext, &self.describe, &self.store)?;
        let fits = state.key.as_ref().map(Key::is_passphrase) == Some(passphrase);
        if !fits {
            state.key = None;
            let key = if passphrase {
                Key::Passphrase(self.obtain_passphrase(false, false)?)
            } else {
                Key::Identity(self.require_identity()?)
            };
            state.key = Some(key);
        }
        Ok(())
    }

    pub(super) fn decrypt_with_state(
        &self,
        state: &mut State,
        ciphertext: &[u8],
    ) -> Result<Document> {
        self.key_for(state, ciphertext)?;
        let key = state
            .key
            .as_ref()
            .ok_or_else(|| self.err(ErrorKind::BadKey, "no key"))?;
        let plaintext =
            match crypto::decrypt(ciphertext, key, &self.describe, &self.store, &self.identity) {
                Ok(p) => p,
                Err(e) if e.kind() == ErrorKind::BadKey && !key.is_passphrase() => {
                    // The identity file may have been replaced since we cached it (a rekey by
                    // another process): read it again once before giving up.
                    state.key = Some(Key::Identity(self.require_identity()?));
                    let key = state
                        .key
                        .as_ref()
                        .ok_or_else(|| self.err(ErrorKind::BadKey, "no key"))?;
                    crypto::decrypt(ciphertext, key, &self.describe, &self.store, &self.identity)?
                }
                Err(e) => {
                    if key.is_passphrase() {
                        state.key = None;
                    }
                    return Err(e);
                }
            };
        Document::parse(&plaintext).map_err(|why| {
            self.err(
                ErrorKind::Corrupt,
                format!("store {}: {why}; nothing was changed", self.store.display()),
            )
            .with_hint(format!(
                "inspect it with `age -d -i {} {}`, or restore a backup ({}.bak-*)",
                self.identity.display(),
                self.store.display(),
                self.store.display()
            ))
        })
    }
}

//! `credential add --ssh-key FILE`: an SSH private key read from a file into the
//! credential (never from argv, where `ps` shows it), and the passphrase of an encrypted one
//! from stdin (`--ssh-key-passphrase-stdin`) or a hidden prompt.

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use siteport_creds::{MAX_SSH_KEY_LEN, Prompter};
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};
use crate::logging::{register_key, register_secret};
use crate::prompt::{TerminalPrompter, password_from_stdin};

/// The key in `path` and, for an encrypted key, its passphrase.
pub fn read_key(
    name: &str,
    path: &Path,
    passphrase_stdin: bool,
) -> CliResult<(SecretString, Option<SecretString>)> {
    let key = read_key_file(path)?;
    register_key(&key);
    let encrypted = is_encrypted(key.expose_secret());
    let passphrase = if passphrase_stdin {
        Some(password_from_stdin()?)
    } else if encrypted {
        let p = TerminalPrompter
            .secret(&format!("Passphrase of the SSH key for '{name}':"))
            .ok_or_else(|| {
                CliError::usage(format!(
                    "{} is an encrypted key and there is no terminal to ask its passphrase on",
                    path.display()
                ))
                .with_hint(format!(
                    "pipe it: `… | siteport credential add {name} --ssh-key {} --ssh-key-passphrase-stdin`",
                    path.display()
                ))
            })?;
        Some(p)
    } else {
        None
    };
    if let Some(p) = &passphrase {
        register_secret(p);
    }
    Ok((key, passphrase))
}

/// Reads the key file, bounded (a wrong path to a big file fails fast), into a secret; the
/// intermediate buffer is wiped.
fn read_key_file(path: &Path) -> CliResult<SecretString> {
    let fail = |what: String| {
        CliError::usage(format!("--ssh-key {}: {what}", path.display()))
            .with_hint("name the private key file, e.g. ~/.ssh/id_ed25519 (not the .pub)")
    };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open it: {e}")))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(8192));
    file.take(MAX_SSH_KEY_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    if buf.len() > MAX_SSH_KEY_LEN {
        return Err(fail(format!(
            "it is larger than {MAX_SSH_KEY_LEN} bytes; it is not a private key"
        )));
    }
    let text = std::str::from_utf8(&buf).map_err(|_| fail("it is not a text key file".into()))?;
    Ok(SecretString::from(text.to_owned()))
}

/// Whether a key file is encrypted: PEM says so in its armour or headers; an OpenSSH key
/// names its cipher (`none` when plain) right after the `openssh-key-v1` magic.
pub(crate) fn is_encrypted(key: &str) -> bool {
    if !key.contains("BEGIN OPENSSH PRIVATE KEY") {
        return key.contains("ENCRYPTED");
    }
    let body: Zeroizing<String> = Zeroizing::new(
        key.lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect(),
    );
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) else {
        return false;
    };
    let bytes = Zeroizing::new(bytes);
    const MAGIC: &[u8] = b"openssh-key-v1\0";
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return false;
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return false;
    };
    let len = u32::from_be_bytes(*len) as usize;
    rest.get(..len).is_some_and(|cipher| cipher != b"none")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssh(cipher: &str) -> String {
        let mut raw = b"openssh-key-v1\0".to_vec();
        raw.extend((cipher.len() as u32).to_be_bytes());
        raw.extend(cipher.as_bytes());
        raw.extend(b"rest-of-key");
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{b64}\n-----END OPENSSH PRIVATE KEY-----\n")
    }

    #[test]
    fn encrypted_keys_are_recognised() {
        assert!(!is_encrypted(&openssh("none")));
        assert!(is_encrypted(&openssh("aes256-ctr")));
        assert!(is_encrypted(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nx\n-----END RSA PRIVATE KEY-----\n"
        ));
        assert!(!is_encrypted(
            "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n"
        ));
    }
}

//! age encryption and decryption of the store, identity files and recipients.

use std::io::{BufReader, Read, Write};
use std::path::Path;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::{DecryptError, Decryptor, Encryptor, x25519};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};
use crate::remedy::Remedy;

/// scrypt work factor (log2 N) for passphrase mode: what the reference `age` CLI uses.
pub const PASSPHRASE_WORK_FACTOR: u8 = 18;
/// Highest work factor accepted when decrypting: 2^22 × 1 KiB = 4 GiB of memory at most, so a
/// hostile file cannot make us allocate without bound.
const MAX_WORK_FACTOR: u8 = 22;

/// The secret material that opens the store.
pub(crate) enum Key {
    /// Identity mode: every X25519 identity found in the identity file.
    Identity(Vec<x25519::Identity>),
    /// Passphrase mode.
    Passphrase(SecretString),
}

impl Key {
    pub fn is_passphrase(&self) -> bool {
        matches!(self, Key::Passphrase(_))
    }

    /// Public keys of the identities (identity mode), as `age1…` strings.
    pub fn public_keys(&self) -> Vec<String> {
        match self {
            Key::Identity(ids) => ids.iter().map(|i| i.to_public().to_string()).collect(),
            Key::Passphrase(_) => Vec::new(),
        }
    }
}

/// A recipient string, parsed and normalised: `age1…` or an SSH public key (`ssh-ed25519 …`,
/// `ssh-rsa …`). The SSH comment is dropped by normalisation.
pub(crate) fn parse_recipient(text: &str) -> std::result::Result<String, String> {
    let t = text.trim();
    if t.starts_with("age1") {
        t.parse::<x25519::Recipient>()
            .map(|r| r.to_string())
            .map_err(|e| format!("'{t}' is not a valid age recipient: {e}"))
    } else if t.starts_with("ssh-") {
        t.parse::<age::ssh::Recipient>()
            .map(|r| r.to_string())
            .map_err(|_| {
                format!(
                    "'{}' is not a supported SSH public key (use ssh-ed25519 or ssh-rsa)",
                    t.split_whitespace().next().unwrap_or(t)
                )
            })
    } else {
        Err(format!(
            "'{}' is neither an age recipient (age1…) nor an SSH public key (ssh-ed25519 …, ssh-rsa …)",
            t.chars().take(40).collect::<String>()
        ))
    }
}

fn boxed_recipient(text: &str) -> std::result::Result<Box<dyn age::Recipient + Send>, String> {
    let t = text.trim();
    if t.starts_with("age1") {
        t.parse::<x25519::Recipient>()
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|e| format!("'{t}' is not a valid age recipient: {e}"))
    } else {
        t.parse::<age::ssh::Recipient>()
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|_| format!("'{t}' is not a supported recipient"))
    }
}

/// A fresh X25519 identity and the identity file text, in `age-keygen`'s format.
pub(crate) fn generate_identity() -> (x25519::Identity, Zeroizing<String>) {
    let id = x25519::Identity::generate();
    let created = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let text = Zeroizing::new(format!(
        "# created: {created}\n# public key: {}\n{}\n",
        id.to_public(),
        id.to_string().expose_secret()
    ));
    (id, text)
}

/// Parses an identity file's contents: `AGE-SECRET-KEY-1…` lines, `#` comments, blank lines.
pub(crate) fn parse_identity_file(
    text: &str,
    backend: &str,
    path: &Path,
) -> Result<Vec<x25519::Identity>> {
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<x25519::Identity>() {
            Ok(id) => ids.push(id),
            Err(_) => {
                // Never quote the line: it may be a secret key with a typo.
                let what = if line.starts_with("-----BEGIN") {
                    "holds an SSH or PEM private key; siteport needs an age identity (AGE-SECRET-KEY-1…)"
                        .to_owned()
                } else {
                    format!("line {} is not an age identity (AGE-SECRET-KEY-1…)", n + 1)
                };
                return Err(Error::new(
                    ErrorKind::BadKey,
                    backend,
                    format!("identity file {} {what}", path.display()),
                )
                .with_hint(
                    "point SITEPORT_IDENTITY_FILE (or `[credentials.file] identity`) at an age \
                     identity file",
                )
                .with_remedy_joined(Remedy::CreateIdentity, ", or "));
            }
        }
    }
    if ids.is_empty() {
        return Err(Error::new(
            ErrorKind::BadKey,
            backend,
            format!("identity file {} contains no age identity", path.display()),
        )
        .with_remedy(Remedy::CreateIdentity));
    }
    Ok(ids)
}

/// Whether the ciphertext is a passphrase (scrypt) file; `Err` with a Corrupt error if it is not
/// an age file at all.
pub(crate) fn header_is_passphrase(ciphertext: &[u8], backend: &str, path: &Path) -> Result<bool> {
    Decryptor::new_buffered(ArmoredReader::new(ciphertext))
        .map(|d| d.is_scrypt())
        .map_err(|e| corrupt(backend, path, &e))
}

fn corrupt(backend: &str, path: &Path, e: &DecryptError) -> Error {
    let why = match e {
        DecryptError::InvalidHeader | DecryptError::UnknownFormat => {
            "is not a valid age file (bad or unknown header)".to_owned()
        }
        DecryptError::InvalidMac => "has a damaged header (MAC check failed)".to_owned(),
        DecryptError::ExcessiveWork { required, .. } => format!(
            "asks for an scrypt work factor of {required}, above the limit of {MAX_WORK_FACTOR}"
        ),
        DecryptError::Io(io) => format!("is damaged or truncated ({io})"),
        _ => "is damaged or truncated".to_owned(),
    };
    Error::new(
        ErrorKind::Corrupt,
        backend,
        format!("store {} {why}; nothing was changed", path.display()),
    )
    .with_hint(format!(
        "restore it from a backup (e.g. {}.bak-*) or from version control",
        path.display()
    ))
}

const ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &[u8] = b"-----END AGE ENCRYPTED FILE-----";

/// The binary age file inside canonical armor, decoded in one pass. age's `ArmoredReader`
/// decodes line by line and checks each line as UTF-8, which was a third of the time of
/// `siteport credential show` with 1,000 credentials stored. `None` for anything else (a
/// binary file, or armor this does not recognise): the caller then uses `ArmoredReader`,
/// which also gives the precise error for damaged armor.
fn dearmor(file: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = file.strip_prefix(ARMOR_BEGIN)?;
    let end = text
        .windows(ARMOR_END.len())
        .rposition(|w| w == ARMOR_END)?;
    if !text[end + ARMOR_END.len()..]
        .iter()
        .all(u8::is_ascii_whitespace)
    {
        return None;
    }
    // Each 64-column line is whole base64 quanta, so lines decode one by one straight into
    // the output: no joined copy of the text (every fresh page of a buffer this size is a
    // page fault, which on some VMs cost more than the decoding).
    let mut binary: Vec<u8> = Vec::with_capacity(end / 4 * 3 + 3);
    for line in text[..end].split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        // Padding may only end the last line; anything else is not canonical armor.
        if !line.len().is_multiple_of(4) || !binary.len().is_multiple_of(3) {
            return None;
        }
        base64::engine::general_purpose::STANDARD
            .decode_vec(line, &mut binary)
            .ok()?;
    }
    Some(binary)
}

/// What the decryptor reads: an already decoded binary file, or armor decoded on the fly.
enum BufferedInput<'a> {
    Binary(&'a [u8]),
    Armored(ArmoredReader<BufReader<&'a [u8]>>),
}

impl Read for BufferedInput<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            BufferedInput::Binary(b) => b.read(buf),
            BufferedInput::Armored(r) => r.read(buf),
        }
    }
}

impl std::io::BufRead for BufferedInput<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self {
            BufferedInput::Binary(b) => b.fill_buf(),
            BufferedInput::Armored(r) => r.fill_buf(),
        }
    }

    fn consume(&mut self, amt: usize) {
        match self {
            BufferedInput::Binary(b) => b.consume(amt),
            BufferedInput::Armored(r) => r.consume(amt),
        }
    }
}

/// Decrypts the whole store. Wrong keys are `BadKey`, damage is `Corrupt`.
pub(crate) fn decrypt(
    ciphertext: &[u8],
    key: &Key,
    backend: &str,
    path: &Path,
    identity_path: &Path,
) -> Result<Zeroizing<Vec<u8>>> {
    let binary = dearmor(ciphertext);
    let decryptor = match &binary {
        Some(b) => Decryptor::new_buffered(BufferedInput::Binary(b)),
        None => Decryptor::new_buffered(BufferedInput::Armored(ArmoredReader::new(ciphertext))),
    }
    .map_err(|e| corrupt(backend, path, &e))?;
    let reader = match key {
        Key::Identity(ids) => decryptor.decrypt(ids.iter().map(|i| i as &dyn age::Identity)),
        Key::Passphrase(p) => {
            let mut id = age::scrypt::Identity::new(p.clone());
            id.set_max_work_factor(MAX_WORK_FACTOR);
            decryptor.decrypt(std::iter::once(&id as &dyn age::Identity))
        }
    };
    let mut reader = reader.map_err(|e| match (&e, key) {
        (DecryptError::NoMatchingKeys, Key::Identity(_)) => Error::new(
            ErrorKind::BadKey,
            backend,
            format!(
                "store {} is not encrypted to the identity in {}; nothing was changed",
                path.display(),
                identity_path.display()
            ),
        )
        .with_hint("use the identity this store was created with (SITEPORT_IDENTITY_FILE)")
        .with_remedy_joined(Remedy::AddRecipient(None), ", or "),
        (
            DecryptError::DecryptionFailed
            | DecryptError::KeyDecryptionFailed
            | DecryptError::NoMatchingKeys,
            Key::Passphrase(_),
        ) => Error::new(
            ErrorKind::BadKey,
            backend,
            format!(
                "wrong passphrase for store {}; nothing was changed",
                path.display()
            ),
        )
        .with_hint(
            "check SITEPORT_PASSPHRASE, `[credentials.file] passphrase_command` or what you typed",
        ),
        _ => corrupt(backend, path, &e),
    })?;
    // Sized up front: growing would leave copies of the plaintext in freed memory.
    let mut out = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    reader
        .read_to_end(&mut out)
        .map_err(|e| corrupt(backend, path, &DecryptError::Io(e)))?;
    Ok(out)
}

/// Encrypts `plaintext` (armored) to `recipients` (identity mode) or a passphrase.
pub(crate) fn encrypt(
    plaintext: &[u8],
    key: &Key,
    recipients: &[String],
    backend: &str,
) -> Result<Vec<u8>> {
    let encryptor = match key {
        Key::Identity(_) => {
            let parsed = recipients
                .iter()
                .map(|r| boxed_recipient(r))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Invalid,
                        backend,
                        format!("stored recipient list: {e}"),
                    )
                })?;
            Encryptor::with_recipients(parsed.iter().map(|r| r.as_ref() as &dyn age::Recipient))
                .map_err(|e| {
                    Error::new(ErrorKind::Invalid, backend, format!("cannot encrypt: {e}"))
                })?
        }
        Key::Passphrase(p) => {
            let mut r = age::scrypt::Recipient::new(p.clone());
            r.set_work_factor(PASSPHRASE_WORK_FACTOR);
            Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).map_err(|e| {
                Error::new(ErrorKind::Invalid, backend, format!("cannot encrypt: {e}"))
            })?
        }
    };
    let io_err = |e: std::io::Error| {
        Error::new(
            ErrorKind::Unavailable,
            backend,
            format!("encryption failed: {e}"),
        )
    };
    let mut out = Vec::with_capacity(plaintext.len() * 2 + 512);
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(io_err)?;
    let mut w = encryptor.wrap_output(armor).map_err(io_err)?;
    w.write_all(plaintext).map_err(io_err)?;
    w.finish().and_then(|a| a.finish()).map_err(io_err)?;
    Ok(out)
}

/// The recipient stanzas in the header of an age file (armored or binary), each as a short
/// description that does not change between writes to the same recipients: `X25519` (its
/// line names no key), `ssh-ed25519 <tag>` / `ssh-rsa <tag>` (the tag is a hash of the SSH
/// key), `scrypt`, or the tag of any other kind (a plugin). Sorted. The one random "grease"
/// stanza age adds to every file it writes is left out; any further one is kept as `grease`,
/// since it could be a plugin's stanza in disguise. `None` when the header cannot be read
/// (decryption then says what is wrong with the file).
pub(crate) fn stanza_kinds(ciphertext: &[u8]) -> Option<Vec<String>> {
    const MAGIC: &[u8] = b"age-encryption.org/v1\n";
    let binary = if ciphertext.starts_with(MAGIC) {
        ciphertext.to_vec()
    } else {
        match dearmor(ciphertext) {
            Some(b) => b,
            None => {
                let mut out = Vec::new();
                ArmoredReader::new(ciphertext).read_to_end(&mut out).ok()?;
                out
            }
        }
    };
    let body = binary.strip_prefix(MAGIC)?;
    let mut kinds = Vec::new();
    let mut grease = 0;
    for line in body.split(|b| *b == b'\n') {
        if line.starts_with(b"--- ") {
            kinds.sort();
            return Some(kinds);
        }
        // Stanza bodies are base64, which has no `-`: only stanza openings start with `->`.
        let Some(args) = line.strip_prefix(b"-> ") else {
            continue;
        };
        let args = std::str::from_utf8(args).ok()?;
        let mut it = args.split(' ');
        let tag = it.next()?;
        let kind = match tag {
            "ssh-ed25519" | "ssh-rsa" => format!("{tag} {}", it.next()?),
            t if t.ends_with("-grease") => {
                grease += 1;
                if grease == 1 {
                    continue;
                }
                "grease".to_owned()
            }
            t => t.to_owned(),
        };
        kinds.push(kind);
    }
    None
}

/// Reads a whole small file into memory (store or identity).
pub(crate) fn read_all(file: std::fs::File) -> std::io::Result<Zeroizing<Vec<u8>>> {
    // Sized from the file's length: one read, no regrowing (and no stale copies).
    let len = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut out = Zeroizing::new(Vec::with_capacity(len.saturating_add(1)));
    let mut file = file;
    file.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armored(len: usize) -> Vec<u8> {
        let id = age::x25519::Identity::generate();
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let enc =
            Encryptor::with_recipients(std::iter::once(&id.to_public() as &dyn age::Recipient))
                .expect("recipient");
        let mut out = Vec::new();
        let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).expect("armor");
        let mut w = enc.wrap_output(armor).expect("wrap");
        w.write_all(&plain).expect("write");
        w.finish().and_then(|a| a.finish()).expect("finish");
        out
    }

    #[test]
    fn dearmor_matches_age_armored_reader() {
        // Sizes around the 48-byte line boundary and the 64 KiB age chunk.
        for len in [0, 1, 47, 48, 49, 1000, 65_536, 200_000] {
            let file = armored(len);
            let mut expected = Vec::new();
            ArmoredReader::new(&file[..])
                .read_to_end(&mut expected)
                .expect("age dearmors its own output");
            assert_eq!(dearmor(&file).as_deref(), Some(&expected[..]), "len {len}");
        }
    }

    #[test]
    fn dearmor_rejects_what_is_not_canonical_armor() {
        let file = armored(500);
        let text = String::from_utf8(file).expect("armor is text");
        // Padding in the middle: a valid padded quantum ("AA==", one zero byte) as a line.
        let lines: Vec<&str> = text.lines().collect();
        let mut padded = lines.clone();
        padded.insert(2, "AA==");
        assert_eq!(dearmor(padded.join("\n").as_bytes()), None);
        // A line that is not whole base64 quanta.
        let cut = text.replacen(&lines[1][..64], &lines[1][..63], 1);
        assert_eq!(dearmor(cut.as_bytes()), None);
        // Trailing garbage after the end marker, and no armor at all.
        assert_eq!(dearmor(format!("{text}x").as_bytes()), None);
        assert_eq!(dearmor(b"age-encryption.org/v1\n"), None);
    }
}

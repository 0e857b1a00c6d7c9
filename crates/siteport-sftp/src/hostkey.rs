//! The host-key check, run inside the key exchange (before any authentication): OpenSSH
//! known_hosts files (plain and hashed host names, `[host]:port`, wildcards, `!` negation,
//! `@revoked`), a `SHA256:` pin, or nothing at all when asked.
//!
//! russh has a known_hosts reader, but it splits on single spaces, stops at the first line it
//! cannot parse and knows no markers; this one skips what it does not understand, as OpenSSH
//! does, and says which file and line recorded a different key.

use std::path::Path;

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey, PublicKeyBase64};

use crate::error::{HostKeyInfo, SftpError, SftpErrorKind};
use crate::options::HostKeyPolicy;

/// `SHA256:…` of `key`, as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The host name as known_hosts records it: `host`, or `[host]:port` off port 22.
fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The known_hosts line that trusts `key` for `host`:`port`.
pub fn known_hosts_line(host: &str, port: u16, key: &PublicKey) -> String {
    format!(
        "{} {} {}",
        host_pattern(host, port),
        key.algorithm().as_str(),
        key.public_key_base64()
    )
}

fn info(host: &str, port: u16, key: &PublicKey, recorded_at: Option<String>) -> HostKeyInfo {
    HostKeyInfo {
        algorithm: key.algorithm().as_str().to_string(),
        fingerprint: fingerprint(key),
        known_hosts_line: known_hosts_line(host, port, key),
        recorded_at,
    }
}

/// Checks `key` for `host`:`port` under `policy`. `Err` is a host-key error ready to show.
pub(crate) fn check(
    policy: &HostKeyPolicy,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<(), SftpError> {
    let server = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match policy {
        HostKeyPolicy::Insecure => {
            tracing::warn!(
                "sftp {server}: host key NOT checked (insecure): {}",
                fingerprint(key)
            );
            Ok(())
        }
        HostKeyPolicy::Pin(pin) => {
            let fp = fingerprint(key);
            if normalize_pin(pin) == normalize_pin(&fp) {
                return Ok(());
            }
            Err(SftpError::new(
                SftpErrorKind::HostKeyChanged,
                server,
                format!(
                    "WARNING: the host key does not match the pinned fingerprint: the server \
                     offered {} {fp}, the pin is {pin}; someone may be intercepting the \
                     connection. Nothing was sent.",
                    key.algorithm().as_str()
                ),
            )
            .with_hint(format!(
                "if the server's key really changed, pin the new one: {fp}"
            ))
            .with_host_key(info(host, port, key, None)))
        }
        HostKeyPolicy::KnownHosts(files) => check_known_hosts(files, host, port, key, server),
    }
}

/// `SHA256:abc` and `SHA256:abc=` are the same pin; so are `sha256:` and `SHA256:`.
fn normalize_pin(pin: &str) -> String {
    let p = pin.trim().trim_end_matches('=');
    match p.split_once(':') {
        Some((alg, rest)) => format!("{}:{rest}", alg.to_ascii_uppercase()),
        None => format!("SHA256:{p}"),
    }
}

/// What the known_hosts files say about a host's key.
enum Verdict {
    Trusted,
    Revoked(String),
    Changed(String),
    Unknown,
}

fn check_known_hosts(
    files: &[std::path::PathBuf],
    host: &str,
    port: u16,
    key: &PublicKey,
    server: String,
) -> Result<(), SftpError> {
    let target = host_pattern(host, port);
    let mut changed = None;
    for file in files {
        match verdict_in_file(file, &target, key) {
            Verdict::Trusted => return Ok(()),
            Verdict::Revoked(at) => {
                return Err(SftpError::new(
                    SftpErrorKind::HostKeyChanged,
                    server,
                    format!(
                        "the host key {} is marked @revoked at {at}",
                        fingerprint(key)
                    ),
                )
                .with_host_key(info(host, port, key, Some(at))));
            }
            Verdict::Changed(at) => changed = changed.or(Some(at)),
            Verdict::Unknown => {}
        }
    }
    let where_ = files
        .first()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "a known_hosts file".into());
    let line = known_hosts_line(host, port, key);
    match changed {
        Some(at) => Err(SftpError::new(
            SftpErrorKind::HostKeyChanged,
            server,
            format!(
                "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED: the server offered {} {}, \
                 but {at} records a different {} key; someone may be intercepting the \
                 connection. Nothing was sent.",
                key.algorithm().as_str(),
                fingerprint(key),
                key.algorithm().as_str()
            ),
        )
        .with_hint(format!(
            "if the key really changed, replace the line at {at} with: {line}"
        ))
        .with_host_key(info(host, port, key, Some(at)))),
        None => Err(SftpError::new(
            SftpErrorKind::HostKeyUnknown,
            server,
            format!(
                "the host key is not known: {} {}",
                key.algorithm().as_str(),
                fingerprint(key)
            ),
        )
        .with_hint(format!(
            "check the fingerprint with the server's administrator, then add this line to \
             {where_}: {line}"
        ))
        .with_host_key(info(host, port, key, None))),
    }
}

fn verdict_in_file(file: &Path, target: &str, key: &PublicKey) -> Verdict {
    // A missing or unreadable file records nothing (as in OpenSSH).
    let Ok(text) = std::fs::read_to_string(file) else {
        return Verdict::Unknown;
    };
    let mut changed = None;
    for (n, raw) in text.lines().enumerate() {
        let at = || format!("{}:{}", file.display(), n + 1);
        let Some(entry) = parse_line(raw) else {
            continue;
        };
        if entry.marker == Some("@cert-authority") || !hosts_match(entry.hosts, target) {
            continue;
        }
        let Ok(recorded) = russh::keys::parse_public_key_base64(entry.key_b64) else {
            continue;
        };
        let same = recorded.key_data() == key.key_data();
        if entry.marker == Some("@revoked") {
            if same {
                return Verdict::Revoked(at());
            }
            continue;
        }
        if same {
            return Verdict::Trusted;
        }
        if recorded.algorithm() == key.algorithm() && changed.is_none() {
            changed = Some(at());
        }
    }
    changed.map_or(Verdict::Unknown, Verdict::Changed)
}

struct Entry<'a> {
    marker: Option<&'a str>,
    hosts: &'a str,
    key_b64: &'a str,
}

fn parse_line(raw: &str) -> Option<Entry<'_>> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let mut marker = None;
    if first.starts_with('@') {
        marker = Some(first);
        first = fields.next()?;
    }
    let _algorithm = fields.next()?;
    let key_b64 = fields.next()?;
    Some(Entry {
        marker,
        hosts: first,
        key_b64,
    })
}

/// Whether a known_hosts host field (comma-separated patterns, `!` negations, or one hashed
/// `|1|salt|hash`) matches `target` (`host` or `[host]:port`).
fn hosts_match(field: &str, target: &str) -> bool {
    if let Some(rest) = field.strip_prefix("|1|") {
        return hashed_match(rest, target);
    }
    let mut matched = false;
    for pattern in field.split(',') {
        if let Some(neg) = pattern.strip_prefix('!') {
            if glob(neg, target) {
                return false;
            }
        } else if glob(pattern, target) {
            matched = true;
        }
    }
    matched
}

fn hashed_match(rest: &str, target: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = rest.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mac) = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(target.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// OpenSSH's host pattern match: `*` any run, `?` one character, case-insensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).expect("test key")
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    fn run(text: &str, host: &str, port: u16, k: &str) -> Result<(), SftpError> {
        let f = file(text);
        let policy = HostKeyPolicy::KnownHosts(vec![f.path().to_path_buf()]);
        check(&policy, host, port, &key(k))
    }

    #[test]
    fn plain_hashed_ports_and_changes() {
        let ok = format!("# comment\n\nbroken line\nexample.com,10.0.0.1 ssh-ed25519 {KEY_A}\n");
        assert!(run(&ok, "example.com", 22, KEY_A).is_ok());
        assert!(run(&ok, "10.0.0.1", 22, KEY_A).is_ok());
        // Port 22 entries do not cover other ports.
        let e = run(&ok, "example.com", 2222, KEY_A).unwrap_err();
        assert_eq!(e.kind(), SftpErrorKind::HostKeyUnknown);
        let hk = e.host_key().expect("host key info");
        assert_eq!(
            hk.known_hosts_line,
            format!("[example.com]:2222 ssh-ed25519 {KEY_A}")
        );
        assert!(hk.fingerprint.starts_with("SHA256:"));
        assert!(e.hint().is_some_and(|h| h.contains(&hk.known_hosts_line)));
        let ported = format!("[example.com]:2222 ssh-ed25519 {KEY_A}\n");
        assert!(run(&ported, "example.com", 2222, KEY_A).is_ok());
        let e = run(&ok, "example.com", 22, KEY_B).unwrap_err();
        assert_eq!(e.kind(), SftpErrorKind::HostKeyChanged);
        assert!(
            e.host_key()
                .and_then(|h| h.recorded_at.clone())
                .is_some_and(|a| a.ends_with(":4"))
        );
        // A hashed entry for example.com (salt/hash made with `ssh-keygen -H`'s scheme).
        let salt = [7u8; 20];
        let mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt)
            .expect("hmac")
            .chain_update(b"example.com")
            .finalize()
            .into_bytes();
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = format!(
            "|1|{}|{} ssh-ed25519 {KEY_A}\n",
            b64.encode(salt),
            b64.encode(mac)
        );
        assert!(run(&hashed, "example.com", 22, KEY_A).is_ok());
        assert_eq!(
            run(&hashed, "other.com", 22, KEY_A).unwrap_err().kind(),
            SftpErrorKind::HostKeyUnknown
        );
    }

    #[test]
    fn wildcards_negation_markers() {
        let text = format!("*.example.com,!bad.example.com ssh-ed25519 {KEY_A}\n");
        assert!(run(&text, "www.example.com", 22, KEY_A).is_ok());
        assert!(run(&text, "bad.example.com", 22, KEY_A).is_err());
        let revoked = format!("@revoked * ssh-ed25519 {KEY_A}\nh ssh-ed25519 {KEY_A}\n");
        assert_eq!(
            run(&revoked, "h", 22, KEY_A).unwrap_err().kind(),
            SftpErrorKind::HostKeyChanged
        );
    }

    #[test]
    fn pins() {
        let k = key(KEY_A);
        let fp = fingerprint(&k);
        assert!(check(&HostKeyPolicy::Pin(fp.clone()), "h", 22, &k).is_ok());
        assert!(check(&HostKeyPolicy::Pin(format!("{fp}=")), "h", 22, &k).is_ok());
        let e = check(&HostKeyPolicy::Pin(fp), "h", 22, &key(KEY_B)).unwrap_err();
        assert_eq!(e.kind(), SftpErrorKind::HostKeyChanged);
        assert!(check(&HostKeyPolicy::Insecure, "h", 22, &k).is_ok());
        assert!(!glob("a*c", "abd") && glob("a*c", "abbc") && glob("?b", "ab"));
    }
}

//! Server-side file hashes: the `HASH` command of draft-bryan-ftpext-hash (`OPTS HASH ALG` to
//! choose, `213 ALG START-END HEX PATH` in reply) and the older `XSHA256`, `XSHA1` and `XMD5`
//! (`250 HEX`). proftpd's mod_digest offers all of them. siteport uses them only on a first
//! export over a tree another tool uploaded, to send just the files whose content differs.

use crate::conn::FtpConnection;
use crate::error::{FtpError, FtpErrorKind};

/// A hash algorithm a server may compute, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-1.
    Sha1,
    /// MD5.
    Md5,
}

impl HashAlgorithm {
    /// Best first.
    pub const ALL: [HashAlgorithm; 3] = [Self::Sha256, Self::Sha1, Self::Md5];

    /// The name in `HASH` and `OPTS HASH` (`SHA-256`).
    pub fn hash_name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha1 => "SHA-1",
            Self::Md5 => "MD5",
        }
    }

    /// The older command (`XSHA256`).
    pub fn x_command(self) -> &'static str {
        match self {
            Self::Sha256 => "XSHA256",
            Self::Sha1 => "XSHA1",
            Self::Md5 => "XMD5",
        }
    }

    /// Hex digits in a digest.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha1 => 40,
            Self::Md5 => 32,
        }
    }
}

/// The `HASH` feature line's algorithms (`HASH CRC32;MD5;SHA-1*;SHA-256;`), upper case, with
/// whether each is the selected one (`*`).
fn hash_feature(raw: &[String]) -> Vec<(String, bool)> {
    raw.iter()
        .filter_map(|l| {
            let (word, rest) = l.split_once(' ')?;
            word.eq_ignore_ascii_case("HASH").then_some(rest)
        })
        .flat_map(|rest| rest.split(';'))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            let selected = a.ends_with('*');
            (a.trim_end_matches('*').to_ascii_uppercase(), selected)
        })
        .collect()
}

fn has_x_command(raw: &[String], alg: HashAlgorithm) -> bool {
    raw.iter()
        .any(|l| l.trim().eq_ignore_ascii_case(alg.x_command()))
}

/// The digest in a reply: the first token of the right length made of hex digits, lower case.
fn digest_in(text: &str, alg: HashAlgorithm) -> Option<String> {
    text.split_whitespace()
        .find(|t| t.len() == alg.hex_len() && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

impl FtpConnection {
    /// The best hash algorithm the server offers (by `HASH` or an `X…` command), if any.
    pub fn hash_algorithm(&self) -> Option<HashAlgorithm> {
        let raw = &self.features().raw;
        let listed = hash_feature(raw);
        HashAlgorithm::ALL
            .into_iter()
            .find(|a| has_x_command(raw, *a) || listed.iter().any(|(n, _)| n == a.hash_name()))
    }

    /// The server's hash of the file `path` in `alg`, lower-case hex: the `X…` command when
    /// offered (one round trip, no session state), else `HASH` after `OPTS HASH` when `alg` is
    /// not the selected one.
    pub async fn file_hash(&mut self, path: &str, alg: HashAlgorithm) -> Result<String, FtpError> {
        if path.is_empty() || path.contains(['\r', '\n', '\0']) {
            return Err(FtpError::new(
                FtpErrorKind::Invalid,
                self.server(),
                "hash: path is empty or contains CR, LF or NUL",
            ));
        }
        let wire = self.wire_path(path);
        let raw = self.features().raw.clone();
        let command = if has_x_command(&raw, alg) {
            format!("{} {wire}", alg.x_command())
        } else {
            let listed = hash_feature(&raw);
            let Some((_, selected)) = listed.iter().find(|(n, _)| n == alg.hash_name()) else {
                return Err(FtpError::new(
                    FtpErrorKind::Invalid,
                    self.server(),
                    format!("the server does not hash with {}", alg.hash_name()),
                ));
            };
            if !selected {
                let opts = format!("OPTS HASH {}", alg.hash_name());
                let (code, text) = self.raw_command(&opts).await?;
                if code != 200 {
                    return Err(FtpError::from_reply(self.server(), &opts, code, &text));
                }
            }
            format!("HASH {wire}")
        };
        let (code, text) = self.raw_command(&command).await?;
        if code != 213 && code != 250 {
            return Err(FtpError::from_reply(self.server(), &command, code, &text));
        }
        digest_in(&text, alg).ok_or_else(|| {
            FtpError::new(
                FtpErrorKind::Invalid,
                self.server(),
                format!("{command}: no {} digest in the reply", alg.hash_name()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_and_reply_parsing() {
        let raw: Vec<String> = ["HASH CRC32;MD5;SHA-1*;SHA-256;SHA-512;", "XMD5", "MDTM"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = hash_feature(&raw);
        assert!(f.contains(&("SHA-1".to_string(), true)));
        assert!(f.contains(&("SHA-256".to_string(), false)));
        assert!(has_x_command(&raw, HashAlgorithm::Md5));
        assert!(!has_x_command(&raw, HashAlgorithm::Sha256));
        let h = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        assert_eq!(
            digest_in(
                &format!("Computing SHA-256 digest\nSHA-256 0-6 {h} a.txt"),
                HashAlgorithm::Sha256
            )
            .as_deref(),
            Some(h)
        );
        assert_eq!(
            digest_in("B1946AC92492D2347C6235B4D2611184", HashAlgorithm::Md5).as_deref(),
            Some("b1946ac92492d2347c6235b4d2611184")
        );
        assert!(digest_in("Computing MD5 digest", HashAlgorithm::Md5).is_none());
    }
}

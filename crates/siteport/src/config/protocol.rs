//! `protocol = "ftp" | "sftp"` and the keys that belong to one protocol only. A key of the
//! other protocol is an error at its place rather than silently ignored: `tls = "implicit"` on
//! an SFTP site, or a `host_key` pin on an FTP site, means the writer expects a protection
//! that would not be there.

use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use toml::Spanned;

use super::Config;
use super::error::{ConfigError, ConfigErrorKind};
use super::raw::RawSite;

/// The wire protocol of a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SiteProtocol {
    /// FTP or FTPS (see `tls`).
    #[default]
    Ftp,
    /// SFTP (over SSH).
    Sftp,
}

impl SiteProtocol {
    /// The name used in config files: `ftp`, `sftp`.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteProtocol::Ftp => "ftp",
            SiteProtocol::Sftp => "sftp",
        }
    }
}

impl fmt::Display for SiteProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A site's SFTP-only settings (host key checks, modes), as written (and checked).
#[derive(Debug, Clone, Default)]
pub struct SftpKeys {
    /// `host_key = "SHA256:…"`, a pin.
    pub host_key: Option<String>,
    /// `known_hosts = "PATH"`, as written (`~/` and relative paths resolved later).
    pub known_hosts: Option<String>,
    /// `insecure_host_key = true`.
    pub insecure_host_key: bool,
    /// `file_mode = "0640"`: permissions of uploaded files (0644 when unset).
    pub file_mode: Option<u32>,
    /// `dir_mode = "0750"`: permissions of directories siteport creates (0755 when unset).
    pub dir_mode: Option<u32>,
}

impl SftpKeys {
    /// The `known_hosts` file: `~/` is the home directory, a relative path is relative to
    /// the config file's directory `base`.
    pub fn known_hosts_path(&self, base: &std::path::Path) -> Option<PathBuf> {
        let p = self.known_hosts.as_deref()?;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Some(match (p.strip_prefix("~/"), home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => base.join(p),
        })
    }
}

/// Whether `pin` is a SHA-256 host key fingerprint as OpenSSH prints it: `SHA256:` and the
/// base64 of 32 bytes (padding optional).
pub fn is_valid_host_key_pin(pin: &str) -> bool {
    pin.strip_prefix("SHA256:").is_some_and(|b64| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64.trim_end_matches('='))
            .is_ok_and(|d| d.len() == 32)
    })
}

impl Config {
    /// `protocol`: `ftp` (default) or `sftp`.
    pub(super) fn site_protocol(
        &self,
        name: &str,
        r: &RawSite,
    ) -> Result<SiteProtocol, ConfigError> {
        let Some(p) = &r.protocol else {
            return Ok(SiteProtocol::Ftp);
        };
        match p.get_ref().as_str() {
            "ftp" | "ftps" => Ok(SiteProtocol::Ftp),
            "sftp" => Ok(SiteProtocol::Sftp),
            other => Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "site '{name}': protocol = \"{}\" is not one of ftp, sftp",
                    other.escape_debug()
                ),
            )
            .at(self.at(p.span()))
            .hint("write protocol = \"ftp\" (FTP and FTPS, the default) or protocol = \"sftp\"")),
        }
    }

    /// Refuses the keys of the other protocol, each at its place, and checks the SFTP keys.
    pub(super) fn site_protocol_keys(
        &self,
        name: &str,
        protocol: SiteProtocol,
        r: &RawSite,
    ) -> Result<SftpKeys, ConfigError> {
        let ftps_keys = [
            ("tls", r.tls.as_ref().map(Spanned::span)),
            ("ca_file", r.ca_file.as_ref().map(Spanned::span)),
            ("fingerprint", r.fingerprint.as_ref().map(Spanned::span)),
            ("insecure", r.insecure.as_ref().map(Spanned::span)),
            ("passive", r.passive.as_ref().map(Spanned::span)),
        ];
        let sftp_keys = [
            ("host_key", r.host_key.as_ref().map(Spanned::span)),
            ("known_hosts", r.known_hosts.as_ref().map(Spanned::span)),
            (
                "insecure_host_key",
                r.insecure_host_key.as_ref().map(Spanned::span),
            ),
            ("file_mode", r.file_mode.as_ref().map(Spanned::span)),
            ("dir_mode", r.dir_mode.as_ref().map(Spanned::span)),
        ];
        let (wrong, hint) = match protocol {
            SiteProtocol::Sftp => (
                &ftps_keys[..],
                "remove it: an SFTP site's server is checked by its host key \
                 (known_hosts, `host_key = \"SHA256:…\"`), not by TLS",
            ),
            SiteProtocol::Ftp => (
                &sftp_keys[..],
                "add `protocol = \"sftp\"` if the site is SFTP, or remove the key",
            ),
        };
        if let Some((key, Some(at))) = wrong.iter().find(|(_, at)| at.is_some()) {
            let other = match protocol {
                SiteProtocol::Sftp => "FTP/FTPS",
                SiteProtocol::Ftp => "SFTP",
            };
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "site '{name}': `{key}` is an {other} key, but the site's protocol is {protocol}"
                ),
            )
            .at(self.at(at.clone()))
            .hint(hint));
        }
        if let Some(pin) = &r.host_key
            && !is_valid_host_key_pin(pin.get_ref().trim())
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "site '{name}': host_key is not a SHA-256 host key fingerprint (SHA256: and 43 base64 characters)"
                ),
            )
            .at(self.at(pin.span()))
            .hint(
                "copy the fingerprint siteport prints for an unknown host key, or \
                 `ssh-keygen -lf` of the server's public host key",
            ));
        }
        Ok(SftpKeys {
            host_key: r.host_key.as_ref().map(|p| p.get_ref().trim().to_owned()),
            known_hosts: r.known_hosts.as_ref().map(|p| p.get_ref().clone()),
            insecure_host_key: r.insecure_host_key.as_ref().is_some_and(|v| *v.get_ref()),
            file_mode: self.site_mode(name, "file_mode", r.file_mode.as_ref())?,
            dir_mode: self.site_mode(name, "dir_mode", r.dir_mode.as_ref())?,
        })
    }

    /// `file_mode` / `dir_mode`: an octal string of 3 or 4 digits (`"0640"`, `"750"`). The
    /// owner must keep what siteport itself needs: reading its files back (import, verify),
    /// and writing into and searching its directories (uploads into them).
    fn site_mode(
        &self,
        name: &str,
        key: &str,
        v: Option<&Spanned<toml::Value>>,
    ) -> Result<Option<u32>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let (example, needs, needs_what) = if key == "dir_mode" {
            (
                "0755",
                0o700,
                "rwx (0700): siteport writes into the directories it creates",
            )
        } else {
            (
                "0644",
                0o400,
                "r (0400): siteport reads its files back (import, verify)",
            )
        };
        let err = |what: String| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}': {key} {what}"),
            )
            .at(self.at(v.span()))
        };
        let toml::Value::String(text) = v.get_ref() else {
            return Err(err("must be an octal string".into())
                .hint(format!("write it in quotes: {key} = \"{example}\"")));
        };
        let digits = text.trim();
        let mode = (matches!(digits.len(), 3 | 4)
            && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        .then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
        .ok_or_else(|| {
            err(format!(
                "= \"{}\" is not a mode of 3 or 4 octal digits",
                text.escape_debug()
            ))
            .hint(format!("e.g. {key} = \"{example}\""))
        })?;
        if mode & needs != needs {
            return Err(err(format!(
                "= \"{digits}\" takes from the owner what it needs: {needs_what}"
            ))
            .hint(format!("keep the owner's bits, e.g. {key} = \"{example}\"")));
        }
        Ok(Some(mode))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use secrecy::{ExposeSecret, SecretString};
    use siteport_creds::testkit::{FIXTURE_SSH_KEY, MemoryBackend};
    use siteport_creds::{BackendKind, Credential, CredentialBackend, CredentialName, StoreMode};

    use super::*;

    fn no_env(_: &str) -> Result<Option<String>, siteport_creds::reference::NotUnicode> {
        Ok(None)
    }

    #[tokio::test]
    async fn sftp_sites_resolve_with_their_keys() {
        let text = r#"
[[site]]
name = "key"
protocol = "sftp"
host = "sftp.example"
credential = "deploy"
local = "public"
known_hosts = "keys/known_hosts"
host_key = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"

[[site]]
name = "legacy"
url = "sftp://web:pw-legacy-1@sftp.example:2222/srv/www"
local = "public"
insecure_host_key = true

[[site]]
name = "plain"
host = "ftp.example"
credential = "deploy"
local = "public"
"#;
        let cfg = Config::parse(text, Path::new("/cfg/siteport.toml"), &no_env).unwrap();
        let b = MemoryBackend::new(BackendKind::File);
        let cred = Credential::with_ssh_key_only(
            CredentialName::new("deploy").unwrap(),
            "deploy",
            SecretString::from(FIXTURE_SSH_KEY),
            Some(SecretString::from("phrase")),
        )
        .unwrap();
        b.store(&cred, StoreMode::CreateNew).await.unwrap();

        let r = cfg.resolve_site("key", &b, &no_env).await.unwrap();
        assert_eq!((r.protocol, r.port), (SiteProtocol::Sftp, 22));
        assert_eq!(
            r.known_hosts.as_deref(),
            Some(Path::new("/cfg/keys/known_hosts"))
        );
        assert!(
            r.host_key
                .as_deref()
                .is_some_and(|p| p.starts_with("SHA256:"))
        );
        assert_eq!(
            r.ssh_key.as_ref().map(|k| k.expose_secret().to_owned()),
            Some(FIXTURE_SSH_KEY.to_owned())
        );
        assert!(r.password.expose_secret().is_empty());
        assert!(!format!("{r:?}").contains("FIXTUREKEYBODY"));

        let r = cfg.resolve_site("legacy", &b, &no_env).await.unwrap();
        assert_eq!(r.protocol, SiteProtocol::Sftp);
        assert_eq!((r.host.as_str(), r.port), ("sftp.example", 2222));
        assert_eq!(
            (r.username.as_str(), r.remote.as_str()),
            ("web", "/srv/www")
        );
        assert!(r.insecure_host_key);
        assert_eq!(r.password.expose_secret(), "pw-legacy-1");

        let r = cfg.resolve_site("plain", &b, &no_env).await.unwrap();
        assert_eq!((r.protocol, r.port), (SiteProtocol::Ftp, 21));
        assert!(r.ssh_key.is_some(), "the credential's key travels with it");
    }

    #[test]
    fn protocol_and_url_must_agree() {
        let text =
            "[[site]]\nname = \"x\"\nprotocol = \"ftp\"\nurl = \"sftp://h/\"\nlocal = \"p\"\n";
        let e = Config::parse(text, Path::new("/c.toml"), &no_env).unwrap_err();
        assert!(e.to_string().contains("protocol"), "{e}");
        let text = "[[site]]\nname = \"x\"\nprotocol = \"scp\"\nhost = \"h\"\nlocal = \"p\"\n";
        let e = Config::parse(text, Path::new("/c.toml"), &no_env).unwrap_err();
        assert!(e.to_string().contains("not one of ftp, sftp"), "{e}");
    }

    #[test]
    fn modes_are_octal_strings_checked_at_their_place() {
        let site = |mode: &str| {
            format!(
                "[[site]]\nname = \"x\"\nprotocol = \"sftp\"\nhost = \"h\"\nlocal = \"p\"\n{mode}\n"
            )
        };
        let cfg = Config::parse(
            &site("file_mode = \"0640\"\ndir_mode = \"750\""),
            Path::new("/c.toml"),
            &no_env,
        )
        .unwrap();
        assert_eq!(cfg.sites[0].sftp.file_mode, Some(0o640));
        assert_eq!(cfg.sites[0].sftp.dir_mode, Some(0o750));
        let cfg = Config::parse(&site(""), Path::new("/c.toml"), &no_env).unwrap();
        assert_eq!(
            (cfg.sites[0].sftp.file_mode, cfg.sites[0].sftp.dir_mode),
            (None, None)
        );
        for (bad, says) in [
            ("file_mode = 644", "octal string"),
            ("file_mode = 0o644", "octal string"),
            ("file_mode = \"0698\"", "3 or 4 octal digits"),
            ("dir_mode = \"07755\"", "3 or 4 octal digits"),
            ("dir_mode = \"rwxr-xr-x\"", "3 or 4 octal digits"),
            ("dir_mode = \"0644\"", "rwx (0700)"),
            ("file_mode = \"0044\"", "r (0400)"),
        ] {
            let e = Config::parse(&site(bad), Path::new("/c.toml"), &no_env).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(says), "{bad}: {text}");
            assert!(text.contains("/c.toml:6:"), "{bad}: {text}");
        }
    }

    #[test]
    fn pins_are_checked() {
        assert!(is_valid_host_key_pin(
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        ));
        assert!(is_valid_host_key_pin(
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        ));
        assert!(!is_valid_host_key_pin(
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        ));
        assert!(!is_valid_host_key_pin("SHA256:abc"));
        assert!(!is_valid_host_key_pin("MD5:aa:bb"));
    }
}

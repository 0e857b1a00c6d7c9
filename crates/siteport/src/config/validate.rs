//! The checks a run applies to a site's values, applied where the values are known, so that
//! `config check` and every command fail early with exit 2 and file:line:column instead of late
//! at the server (exit 5 or 6) or, worse, sending a control character in `USER`/`PASS`.
//!
//! The value rules are those of the credential store ([`siteport_creds::Credential`]): no
//! control characters, no overlong values, a host without spaces or `/`. Nothing here ever
//! shows a password.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use siteport_creds::{Credential, CredentialName, ValidationError};

use super::Config;
use super::error::{ConfigError, ConfigErrorKind, Location};
use super::resolve::ResolvedSite;
use super::site::SiteConfig;

impl Config {
    /// Where `key` of `site` is set: its value in the file, else the `credential` that supplies
    /// it, else the site's name.
    fn key_location(&self, site: &SiteConfig, key: &str) -> Location {
        let start = site
            .templates
            .get(key)
            .map(|t| t.span.start)
            .or_else(|| site.credential_span.as_ref().map(|s| s.start))
            .unwrap_or(site.name_span.start);
        self.location(start)
    }

    fn invalid(&self, site: &SiteConfig, key: &str, message: String) -> ConfigError {
        ConfigError::new(ConfigErrorKind::Invalid, message).at(Some(self.key_location(site, key)))
    }

    /// Where the deploy state dir of `site` is once `remote` is known: inside it (relative)
    /// or outside it (absolute on the server). The form was checked when the file was read;
    /// what is left is a `state_dir` that is `remote` itself.
    pub(super) fn site_state_place(
        &self,
        site: &SiteConfig,
        remote: &str,
    ) -> Result<String, ConfigError> {
        let Some(value) = &site.state_dir else {
            return Ok(siteport_sync::DEFAULT_STATE_DIR.to_owned());
        };
        siteport_sync::locate_state_dir(remote, value).map_err(|why| {
            let at = site
                .state_dir_span
                .as_ref()
                .map_or(site.name_span.start, |s| s.start);
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{}': state_dir is refused: {why}", site.name),
            )
            .at(Some(self.location(at)))
            .hint("name a directory inside `remote` or, better, outside the web root")
        })
    }

    /// The value rules of the run, on the expanded values of `site` (`r`): host, username,
    /// password, remote, fingerprint. File system checks are [`Config::check_files`].
    pub(super) fn check_values(
        &self,
        site: &SiteConfig,
        r: &ResolvedSite,
    ) -> Result<(), ConfigError> {
        let name = CredentialName::new("check")
            .map_err(|e| ConfigError::new(ConfigErrorKind::Invalid, format!("internal: {e}")))?;
        let value_error = |key: &str, e: ValidationError| {
            let fix = match e.field {
                "password" => {
                    "fix the password where it comes from (control characters such as \
                               CR, LF, ESC or BEL cannot be sent to an FTP server)"
                }
                "host" => {
                    "write the server's host name or IP address alone: no scheme, path, \
                           spaces or control characters"
                }
                _ => "remove the control characters from the value",
            };
            self.invalid(site, key, format!("site '{}': {e}", site.name))
                .hint(fix)
        };
        // Username and password, as the credential store checks them.
        let stand_in = SecretString::from("x");
        Credential::new(name.clone(), r.username.clone(), stand_in.clone())
            .map_err(|e| value_error("username", e))?;
        if !r.password.expose_secret().is_empty() {
            // An empty password is left to the server (some accept one).
            Credential::new(name.clone(), "x", r.password.clone())
                .map_err(|e| value_error("password", e))?;
        }
        Credential::new(name, "x", stand_in)
            .and_then(|c| c.with_host(r.host.clone()))
            .map_err(|e| value_error("host", e))?;
        if let Some(pos) = r.remote.chars().position(char::is_control) {
            return Err(self
                .invalid(
                    site,
                    "remote",
                    format!(
                        "site '{}': invalid remote: contains a control character at character {}",
                        site.name,
                        pos + 1
                    ),
                )
                .hint("write the remote directory without control characters"));
        }
        if let Some(fp) = &r.fingerprint
            && !siteport_sync::is_valid_fingerprint(fp)
        {
            return Err(self
                .invalid(
                    site,
                    "fingerprint",
                    format!(
                        "site '{}': fingerprint is not a SHA-256 digest (64 hex digits, ':' allowed)",
                        site.name
                    ),
                )
                .hint(
                    "copy the `fingerprint = \"…\"` line siteport prints when the certificate \
                     is not trusted, or `openssl x509 -noout -fingerprint -sha256` of it",
                ));
        }
        Ok(())
    }

    /// The files a run needs: `ca_file` readable, and the local directory a directory (with
    /// `missing_ok`, as for `import`, which creates it, it may also not exist yet). `local` is
    /// the site's own or a `--to`/`--from` directory (then errors have no location).
    pub fn check_files(
        &self,
        r: &ResolvedSite,
        local: &Path,
        missing_ok: bool,
    ) -> Result<(), ConfigError> {
        let Some(site) = self.site(&r.name) else {
            return Ok(());
        };
        let own_local = local == r.local;
        let at = |key: &str| own_local.then(|| self.key_location(site, key));
        if let Some(ca) = &r.ca_file
            && let Err(e) = std::fs::File::open(ca).and_then(|f| {
                if f.metadata()?.is_dir() {
                    Err(std::io::Error::other("it is a directory"))
                } else {
                    Ok(())
                }
            })
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "site '{}': cannot read ca_file {}: {e}",
                    site.name,
                    ca.display()
                ),
            )
            .at(Some(self.key_location(site, "ca_file")))
            .hint(
                "point ca_file at the PEM file of the server's CA (relative to the config file)",
            ));
        }
        // Readable is not enough: a key, a DER file or garbage would fail every connection
        // (as a TLS error, exit 6) instead of here, with the file's place (exit 2).
        if let Some(ca) = &r.ca_file
            && let Err(why) = siteport_sync::check_ca_file(ca)
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{}': {why}", site.name),
            )
            .at(Some(self.key_location(site, "ca_file")))
            .hint(
                "ca_file must be a PEM file with one or more `-----BEGIN CERTIFICATE-----` \
                 blocks: the server's CA, or its self-signed certificate",
            ));
        }
        let what = if own_local {
            "local directory"
        } else {
            "directory"
        };
        match std::fs::metadata(local) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "site '{}': {what} {} is not a directory",
                    site.name,
                    local.display()
                ),
            )
            .at(at("local"))
            .hint("point `local` at the directory that holds the site")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing_ok => Ok(()),
            // The "build failed" case: mirroring a missing tree could only delete.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "site '{}': {what} {} does not exist; nothing was changed",
                    site.name,
                    local.display()
                ),
            )
            .at(at("local"))
            .hint(format!(
                "build the site first, or fix `local` (relative to the config file); \
                 `siteport import` creates {}",
                local.display()
            ))),
            Err(e) => Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!(
                    "site '{}': {what} {} cannot be used: {e}",
                    site.name,
                    local.display()
                ),
            )
            .at(at("local"))
            .hint(format!(
                "create it (`mkdir -p {}`) or fix `local` (relative to the config file); \
                 `siteport import` creates it",
                local.display()
            ))),
        }
    }
}

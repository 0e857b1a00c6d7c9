//! The legacy `url = "ftp://user:pass@host:port/path"` key of a site (also `ftps://` and
//! `sftp://`): split into its parts, which fill the site's fields. The password in it is a [`SecretString`] from the moment it
//! is split out, and every intermediate copy of the url is wiped.

use secrecy::SecretString;
use siteport_creds::reference::{self, Segment, SegmentKind};
use toml::Spanned;
use zeroize::Zeroizing;

use super::error::{ConfigError, ConfigErrorKind};
use super::protocol::SiteProtocol;
use super::raw::RawSite;
use super::site::SiteFields;
use super::template::Template;
use super::{Config, TlsMode};

/// The pieces of a legacy site url.
struct UrlParts {
    /// Host, as written.
    host: String,
    port: Option<u16>,
    username: Option<String>,
    /// Percent-decoded, a secret from the moment it is split out.
    password: Option<SecretString>,
    path: Option<String>,
    implicit_tls: bool,
    sftp: bool,
}

impl Config {
    /// Fills `f` (and `tls`, or `protocol` for `sftp://`) from the legacy `url` of site
    /// `name`, refusing a url that duplicates a key the site also sets.
    pub(super) fn apply_url(
        &self,
        name: &str,
        u: &Spanned<String>,
        r: &RawSite,
        f: &mut SiteFields,
        (tls, protocol): (&mut TlsMode, &mut SiteProtocol),
    ) -> Result<(), ConfigError> {
        let parts = self.url_parts(name, u)?;
        let scheme = if parts.sftp {
            SiteProtocol::Sftp
        } else {
            SiteProtocol::Ftp
        };
        if let Some(p) = &r.protocol
            && *protocol != scheme
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}': the url is {scheme}://…, but protocol = \"{protocol}\""),
            )
            .at(self.at(p.span()))
            .hint("make the url's scheme and `protocol` agree, or remove `protocol`"));
        }
        *protocol = scheme;
        let fields: [(&str, bool); 5] = [
            ("host", r.host.is_some()),
            ("port", r.port.is_some()),
            ("user", r.user.is_some()),
            ("password", r.password.is_some()),
            ("remote", r.remote.is_some()),
        ];
        if let Some((key, _)) = fields.iter().find(|(_, set)| *set) {
            return Err(ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{name}' has both `url` and `{key}`"),
            )
            .at(self.at(u.span()))
            .hint(format!("remove `{key}` or take that part out of the url")));
        }
        if parts.implicit_tls {
            match &r.tls {
                Some(t) if *tls != TlsMode::Implicit => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Invalid,
                        format!(
                            "site '{name}': an ftps:// url means implicit TLS, but tls = \"{tls}\""
                        ),
                    )
                    .at(self.at(t.span()))
                    .hint("write ftp:// in the url, or remove `tls`"));
                }
                _ => *tls = TlsMode::Implicit,
            }
        }
        let mut add = |key: &'static str, text: Option<String>| {
            text.inspect(|text| {
                let t = Template {
                    segments: vec![Segment {
                        span: 0..text.len(),
                        kind: SegmentKind::Literal(text.clone()),
                    }],
                    span: u.span(),
                    // Not the url's length: locations then point at the url's start.
                    text_len: 0,
                };
                f.templates.insert(key, t);
            })
        };
        f.host = add("host", Some(parts.host));
        f.port = add("port", parts.port.map(|p| p.to_string()));
        f.username = add("username", parts.username);
        f.remote = add("remote", parts.path);
        if let Some(pw) = parts.password {
            if let Some(c) = &r.credential {
                return Err(ConfigError::new(
                    ConfigErrorKind::Invalid,
                    format!("site '{name}' has both `credential` and a password in `url`"),
                )
                .at(self.at(c.span()))
                .hint("take `user:password@` out of the url: the credential supplies it"));
            }
            // No template: the password never becomes a plain string (resolution takes it
            // from `url_password`).
            f.password = Some(pw.clone());
            f.url_password = Some(pw);
        }
        Ok(())
    }

    /// Splits a legacy `ftp[s]://[user[:password]@]host[:port][/path]` url. User, password
    /// and path are percent-decoded. Errors never show the url (it may hold a password).
    fn url_parts(&self, site: &str, u: &Spanned<String>) -> Result<UrlParts, ConfigError> {
        let err = |what: &str| {
            ConfigError::new(
                ConfigErrorKind::Invalid,
                format!("site '{site}': url: {what} (value not shown)"),
            )
            .at(Some(self.location(u.span().start)))
            .hint("write it as ftp://user@host:21/path, or use host, port, user and remote keys")
        };
        let text = u.get_ref();
        if reference::has_references(text) {
            return Err(err("references (${…}) are not supported inside a url"));
        }
        // The url may hold the password: this copy (`$$` unescaped) is wiped when dropped, and
        // sized up front so that no reallocation leaves a piece of it behind.
        let mut unescaped = Zeroizing::new(String::with_capacity(text.len()));
        for (i, part) in text.split("$$").enumerate() {
            if i > 0 {
                unescaped.push('$');
            }
            unescaped.push_str(part);
        }
        let text = unescaped;
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| err("expected ftp://…, ftps://… or sftp://…"))?;
        let (implicit_tls, sftp) = match scheme.to_ascii_lowercase().as_str() {
            "ftp" => (false, false),
            "ftps" => (true, false),
            "sftp" => (false, true),
            _ => return Err(err("the scheme must be ftp, ftps or sftp")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let decode = |s: &str, what: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    err(&format!(
                        "the {what} is not valid UTF-8 once percent-decoded"
                    ))
                })
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                let user = Some(decode(u, "user name")?).filter(|u| !u.is_empty());
                let pass = match p {
                    Some(p) => Some(decode_secret(p).ok_or_else(|| {
                        err("the password is not valid UTF-8 once percent-decoded")
                    })?),
                    None => None,
                };
                (user, pass)
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| err("unclosed [ in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = match port {
            None | Some("") => None,
            Some(p) => Some(siteport_creds::parse_port(p).map_err(|e| err(&e.to_string()))?),
        };
        let path = match path {
            None | Some("/") => None,
            Some(p) => Some(decode(p, "path")?),
        };
        Ok(UrlParts {
            host: host.to_owned(),
            port,
            username,
            password,
            path,
            implicit_tls,
            sftp,
        })
    }
}

/// Percent-decodes a url's password straight into a secret; `None` when it is not UTF-8. The
/// decoded bytes are wiped (the buffer is sized so that it never reallocates).
fn decode_secret(p: &str) -> Option<SecretString> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(p.len()));
    bytes.extend(percent_encoding::percent_decode_str(p));
    std::str::from_utf8(&bytes).ok().map(SecretString::from)
}

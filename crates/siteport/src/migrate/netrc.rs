//! `~/.netrc`: `machine HOST login USER password PASS` entries (any whitespace between tokens,
//! `default` entries, `account`, and `macdef` bodies up to the next blank line).

use secrecy::SecretString;

/// One `machine` (or `default`) entry.
#[derive(Debug, Clone)]
pub struct NetrcEntry {
    /// The host; `None` for the `default` entry.
    pub machine: Option<String>,
    /// `login`.
    pub login: Option<String>,
    /// `password`.
    pub password: Option<SecretString>,
}

/// Parses netrc text. Errors never show a token (it may be a password).
pub fn parse_netrc(text: &str) -> Result<Vec<NetrcEntry>, String> {
    let mut out: Vec<NetrcEntry> = Vec::new();
    let mut lines = text.lines().peekable();
    let mut tokens: Vec<String> = Vec::new();
    // macdef bodies run to the next empty line and are not tokens: strip them first.
    while let Some(line) = lines.next() {
        let mut words = line.split_whitespace().peekable();
        while let Some(w) = words.next() {
            if w.starts_with('#') && tokens.last().is_none_or(|t| t != "password") {
                break;
            }
            if w == "macdef" {
                while lines.peek().is_some_and(|l| !l.trim().is_empty()) {
                    lines.next();
                }
                words = "".split_whitespace().peekable();
                continue;
            }
            tokens.push(w.to_owned());
        }
    }
    let mut it = tokens.into_iter();
    let value = |key: &str, it: &mut std::vec::IntoIter<String>| {
        it.next()
            .ok_or_else(|| format!("`{key}` at the end of the file has no value"))
    };
    while let Some(t) = it.next() {
        match t.as_str() {
            "machine" => out.push(NetrcEntry {
                machine: Some(value("machine", &mut it)?),
                login: None,
                password: None,
            }),
            "default" => out.push(NetrcEntry {
                machine: None,
                login: None,
                password: None,
            }),
            "login" | "password" | "account" => {
                let v = value(&t, &mut it)?;
                let entry = out
                    .last_mut()
                    .ok_or_else(|| format!("`{t}` before any `machine`"))?;
                match t.as_str() {
                    "login" => entry.login = Some(v),
                    "password" => entry.password = Some(SecretString::from(v)),
                    _ => {}
                }
            }
            // Unknown tokens are skipped, as ftp(1) and curl do; their text is not shown
            // since it could be a password.
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn entries_macdef_and_default() {
        let e = parse_netrc(
            "machine a.example login u1 password p1\n# comment\nmacdef init\ncd /x\n\n\
             machine b.example\n  login u2\n  password p#2\ndefault login anonymous password me@\n",
        )
        .unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].machine.as_deref(), Some("a.example"));
        assert_eq!(e[1].password.as_ref().unwrap().expose_secret(), "p#2");
        assert_eq!(e[2].machine, None);
        assert!(parse_netrc("login x").unwrap_err().contains("before any"));
        let e = parse_netrc("machine h login u password").unwrap_err();
        assert!(e.contains("`password`"), "{e}");
    }
}

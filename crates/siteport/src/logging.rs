//! Logging to stderr with `tracing`, and the redactor that keeps secrets out of it.
//!
//! Every secret value the process handles (a password read from stdin or a prompt, one fetched
//! from a backend, a passphrase) is registered with [`register_secret`]. Everything written to
//! stderr, log events and error messages alike, passes through [`redact`], which replaces each
//! registered value with `****`. Code never logs a secret on purpose; this is the safety net for
//! the day a dependency or a `Debug` impl does.
//!
//! A secret of [`SHORT_SECRET`] characters or more is masked wherever it appears. A shorter one
//! is masked only where it stands as a whole token (not inside a longer run of letters and
//! digits): masking a 3-letter password inside every word would garble messages ("choose
//! ano****r path") and, worse, the places of the stars would tell a log reader the password.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::{Mutex, OnceLock};

use secrecy::{ExposeSecret, SecretString};
use tracing::level_filters::LevelFilter;
use zeroize::Zeroizing;

/// What replaces a secret in output.
pub const MASK: &str = "****";

fn secrets() -> &'static Mutex<Vec<SecretString>> {
    static SECRETS: OnceLock<Mutex<Vec<SecretString>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Registers an SSH private key whole and each of its base64 lines alone: a message could
/// quote one line of it (a parser's error, a wrapped dump).
pub fn register_key(key: &SecretString) {
    register_secret(key);
    for line in key.expose_secret().lines() {
        let line = line.trim();
        // The armour lines are public; a short line could mask ordinary words.
        if line.len() >= 16 && !line.starts_with("-----") {
            register_secret(&SecretString::from(line.to_owned()));
        }
    }
}

/// Remembers `secret` so that [`redact`] masks it in all later stderr output. Kept for the life
/// of the process (a value once seen may show up in any later message) and wiped by
/// [`clear_secrets`], which `main` calls on its way out: the list lives in a static, which is
/// never dropped, so nothing else would wipe it.
pub fn register_secret(secret: &SecretString) {
    if secret.expose_secret().is_empty() {
        return;
    }
    // A poisoned lock only means another thread panicked mid-push; the list is still usable.
    let mut list = secrets().lock().unwrap_or_else(|p| p.into_inner());
    if !list
        .iter()
        .any(|s| s.expose_secret() == secret.expose_secret())
    {
        list.push(secret.clone());
        // Longest first, so that a secret containing another is masked whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
    }
}

/// Wipes every registered secret (each is a [`SecretString`], zeroized when dropped). Output
/// written after this is no longer masked: call it last, once nothing more is printed.
pub fn clear_secrets() {
    let taken = std::mem::take(&mut *secrets().lock().unwrap_or_else(|p| p.into_inner()));
    drop(taken);
}

/// Secrets with fewer characters than this are masked only as whole tokens (see the module
/// docs); `credential add` warns about passwords this short.
pub const SHORT_SECRET: usize = 8;

/// `text` as it may be printed: control characters escaped
/// ([`escape_controls`](crate::output::escape_controls)), then every registered secret masked
/// ([`redact`]). Escaping first cannot hide a secret: secrets hold no control characters, and
/// escaping changes nothing else.
pub fn clean(text: &str) -> Cow<'_, str> {
    match crate::output::escape_controls(text) {
        Cow::Borrowed(t) => redact(t),
        Cow::Owned(t) => Cow::Owned(redact(&t).into_owned()),
    }
}

/// `text` with every registered secret replaced by [`MASK`]: long ones wherever they appear,
/// short ones where they stand as a whole token.
pub fn redact(text: &str) -> Cow<'_, str> {
    let list = secrets().lock().unwrap_or_else(|p| p.into_inner());
    let mut out = Cow::Borrowed(text);
    for s in list.iter() {
        let v = s.expose_secret();
        if !out.contains(v) {
            continue;
        }
        if v.chars().count() >= SHORT_SECRET {
            out = Cow::Owned(out.replace(v, MASK));
        } else if let Some(masked) = mask_tokens(&out, v) {
            out = Cow::Owned(masked);
        }
    }
    out
}

/// `text` with each occurrence of `v` that is not part of a longer alphanumeric run replaced by
/// [`MASK`], or `None` when there is none. The edges are what count: a secret `the` is masked
/// in `PASS the` and `"the"`, not in `another`.
fn mask_tokens(text: &str, v: &str) -> Option<String> {
    let glued = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let v_starts_alnum = glued(v.chars().next());
    let v_ends_alnum = glued(v.chars().next_back());
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut changed = false;
    let mut from = 0;
    while let Some(i) = text[from..].find(v).map(|i| i + from) {
        let end = i + v.len();
        let before = text[..i].chars().next_back();
        let after = text[end..].chars().next();
        // A non-alphanumeric edge of the secret is a delimiter itself.
        let joined = (v_starts_alnum && glued(before)) || (v_ends_alnum && glued(after));
        if !joined {
            out.push_str(&text[rest..i]);
            out.push_str(MASK);
            rest = end;
            changed = true;
            from = end;
        } else {
            // Step one character: overlapping occurrences are looked at too.
            from = i + text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&text[rest..]);
    Some(out)
}

/// Writes `text` to stderr escaped and redacted ([`clean`]). All human-facing stderr output
/// goes through here.
pub fn eprint_redacted(text: &str) {
    let clean = clean(text);
    let mut err = io::stderr().lock();
    // Nothing useful can be done if stderr is gone.
    let _ = err.write_all(clean.as_bytes());
    let _ = err.flush();
    log_file_write(&clean);
}

fn log_file() -> &'static OnceLock<Mutex<std::fs::File>> {
    static FILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();
    &FILE
}

/// `--log-file PATH`: from now on, everything written to stderr (log events and messages,
/// redacted the same way; not the progress bars) is appended to `path` too. The file is
/// created 0600, and a symlink at `path` is refused (no-follow), so that a log cannot be
/// pointed at another file. The caller checks the directory first
/// ([`siteport_fsguard::check_parent`]).
pub fn open_log_file(path: &std::path::Path) -> io::Result<()> {
    let f = siteport_fsguard::open_append(path)?;
    // Set once per process; a second call keeps the first file.
    let _ = log_file().set(Mutex::new(f));
    Ok(())
}

fn log_file_write(clean: &str) {
    if let Some(f) = log_file().get() {
        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
        // A full disk must not stop the run: the log is a copy of stderr.
        let _ = f.write_all(clean.as_bytes());
    }
}

/// How chatty the log is, from `-q` and `-v…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: errors only.
    Quiet,
    /// Default: warnings and errors.
    Normal,
    /// `-v` info, `-vv` debug, `-vvv` (or more) trace.
    Verbose(u8),
}

impl Verbosity {
    /// From the parsed flags.
    pub fn from_flags(verbose: u8, quiet: bool) -> Self {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, n) => Verbosity::Verbose(n),
        }
    }

    fn level(self) -> LevelFilter {
        match self {
            Verbosity::Quiet => LevelFilter::ERROR,
            Verbosity::Normal => LevelFilter::WARN,
            Verbosity::Verbose(1) => LevelFilter::INFO,
            Verbosity::Verbose(2) => LevelFilter::DEBUG,
            Verbosity::Verbose(_) => LevelFilter::TRACE,
        }
    }
}

/// A writer for one log event: it buffers the formatted event and writes it, redacted, to `out`
/// when dropped. The fmt layer asks for a fresh writer per event, so each event is redacted whole
/// and a secret cannot straddle two `write` calls unseen.
struct RedactingWriter<W: Write> {
    buf: Zeroizing<Vec<u8>>,
    out: W,
}

impl<W: Write> RedactingWriter<W> {
    fn new(out: W) -> Self {
        Self {
            buf: Zeroizing::new(Vec::new()),
            out,
        }
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let clean = clean(&text);
        // Nothing useful can be done if the log stream is gone.
        let _ = self.out.write_all(clean.as_bytes());
        let _ = self.out.flush();
        log_file_write(&clean);
    }
}

/// Installs the stderr subscriber. Call once, before any command runs.
pub fn init(verbosity: Verbosity) {
    // At the default level the FTP crate's per-connection warnings (plain FTP, insecure TLS)
    // are left out: the CLI warns once per site instead of once per connection.
    let filter = match verbosity {
        Verbosity::Normal => tracing_subscriber::EnvFilter::new("warn,siteport_ftp=error"),
        v => tracing_subscriber::EnvFilter::new(v.level().to_string()),
    };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingWriter::new(io::stderr()))
        .with_ansi(false)
        .with_target(matches!(verbosity, Verbosity::Verbose(n) if n >= 2))
        .without_time()
        .finish();
    // Already set only happens when embedded in a process that installed its own: keep that one.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_masked_longest_first() {
        register_secret(&SecretString::from("pa55"));
        register_secret(&SecretString::from("pa55word-longer"));
        assert_eq!(
            redact("USER u / PASS pa55word-longer / pa55 / ok"),
            "USER u / PASS **** / **** / ok"
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_secrets_are_masked_as_whole_tokens_only() {
        assert_eq!(
            mask_tokens("choose another path; PASS the", "the").as_deref(),
            Some("choose another path; PASS ****")
        );
        assert_eq!(
            mask_tokens("ftp.acme.example: \"e\" (e)", "e").as_deref(),
            Some("ftp.acme.example: \"****\" (****)")
        );
        assert_eq!(mask_tokens("e", "e").as_deref(), Some("****"));
        assert_eq!(mask_tokens("nothing here", "e"), None);
        // A secret with a non-alphanumeric edge is masked even when glued to a word there.
        assert_eq!(mask_tokens("x=a!b", "!b").as_deref(), Some("x=a****"));
        // Multi-byte text around it is stepped over correctly.
        assert_eq!(mask_tokens("é the ü", "the").as_deref(), Some("é **** ü"));
        assert_eq!(mask_tokens("éthe", "the"), None);
        // Long secrets: anywhere, as before.
        register_secret(&SecretString::from("LongSecret9"));
        assert_eq!(redact("xLongSecret9y"), "x****y");
    }

    #[test]
    fn log_events_are_redacted_on_their_way_out() {
        register_secret(&SecretString::from("w-Secret-42"));
        let mut sink = Vec::new();
        {
            let mut w = RedactingWriter::new(&mut sink);
            // The fmt layer may write an event in pieces; the secret spans two of them here.
            w.write_all(b"DEBUG login PASS w-Sec").unwrap();
            w.write_all(b"ret-42 ok\n").unwrap();
        }
        assert_eq!(
            String::from_utf8(sink).unwrap(),
            "DEBUG login PASS **** ok\n"
        );
    }

    #[test]
    fn verbosity_levels() {
        assert_eq!(Verbosity::from_flags(0, true).level(), LevelFilter::ERROR);
        assert_eq!(Verbosity::from_flags(0, false).level(), LevelFilter::WARN);
        assert_eq!(Verbosity::from_flags(1, false).level(), LevelFilter::INFO);
        assert_eq!(Verbosity::from_flags(2, false).level(), LevelFilter::DEBUG);
        assert_eq!(Verbosity::from_flags(5, false).level(), LevelFilter::TRACE);
    }
}

//! What goes out on the control connection: a plain command, or a line that carries a secret.
//!
//! The password exists in exactly two places: the caller's `SecretString` and, while `PASS`
//! is being sent, one [`SecretLine`] buffer that is wiped when it is dropped. No `String`
//! ever holds it, so no error, trace or `Debug` output can: a secret line's only printable
//! form is its label, `PASS ****`, and the type has no way to print anything else.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// One command line to send, without its CR LF.
#[derive(Clone, Copy)]
pub(crate) enum Command<'a> {
    /// A command whose every byte may be shown (in traces and errors).
    Plain(&'a str),
    /// A command carrying a secret: sent from its own wiped buffer, shown by its label.
    Secret(&'a SecretLine),
}

impl Command<'_> {
    /// How the command is shown in traces and errors: the command itself, or `PASS ****`.
    pub(crate) fn label(&self) -> &str {
        match self {
            Command::Plain(c) => c,
            Command::Secret(l) => l.label(),
        }
    }

    /// Whether the command contains CR, LF or NUL, which would end it early and let the rest
    /// be read as another command (command injection).
    pub(crate) fn has_line_break(&self) -> bool {
        match self {
            Command::Plain(c) => c.contains(['\r', '\n', '\0']),
            Command::Secret(l) => l.argument().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
        }
    }
}

impl<'a> From<&'a str> for Command<'a> {
    fn from(c: &'a str) -> Self {
        Command::Plain(c)
    }
}

impl<'a> From<&'a String> for Command<'a> {
    fn from(c: &'a String) -> Self {
        Command::Plain(c)
    }
}

impl<'a> From<&'a SecretLine> for Command<'a> {
    fn from(l: &'a SecretLine) -> Self {
        Command::Secret(l)
    }
}

impl fmt::Display for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.label(), f)
    }
}

/// Shown a [`SecretLine`]'s buffer after its drop wiped it (tests only).
#[cfg(test)]
type DropHook = Box<dyn FnOnce(&[u8]) + Send + Sync>;

/// A complete command line `VERB secret\r\n` in one buffer of exactly its length, built once
/// from the secret and written to the socket from there; zeroed when dropped. Its `Display`
/// and `Debug` show only the label (`PASS ****`).
pub(crate) struct SecretLine {
    /// `VERB secret\r\n`. A boxed slice, not a `Vec`: it never grows, so no reallocation
    /// leaves an unwiped copy behind, and wiping it keeps its length (the tests read it back).
    line: Box<[u8]>,
    verb_len: usize,
    label: &'static str,
    /// Shown the buffer after it was wiped, at drop (tests only).
    #[cfg(test)]
    on_drop: Option<DropHook>,
}

impl SecretLine {
    /// How a `PASS` line is shown.
    pub(crate) const PASS_LABEL: &'static str = "PASS ****";

    /// `PASS password`.
    pub(crate) fn pass(password: &SecretString) -> Self {
        Self::new("PASS", Self::PASS_LABEL, password)
    }

    fn new(verb: &str, label: &'static str, secret: &SecretString) -> Self {
        let secret = secret.expose_secret().as_bytes();
        let verb_len = verb.len() + 1;
        // Allocated once at its final length (zero-filled), then filled in place: the secret
        // is copied from the `SecretString` into this buffer and nowhere else.
        let mut line = vec![0u8; verb_len + secret.len() + 2].into_boxed_slice();
        let (head, rest) = line.split_at_mut(verb_len);
        head[..verb.len()].copy_from_slice(verb.as_bytes());
        head[verb.len()] = b' ';
        let (arg, end) = rest.split_at_mut(secret.len());
        arg.copy_from_slice(secret);
        end.copy_from_slice(b"\r\n");
        Self {
            line,
            verb_len,
            label,
            #[cfg(test)]
            on_drop: None,
        }
    }

    /// How this line is shown in traces and errors, e.g. `PASS ****`.
    pub(crate) fn label(&self) -> &'static str {
        self.label
    }

    /// The whole line with its CR LF, to write to the socket.
    pub(crate) fn wire_bytes(&self) -> &[u8] {
        &self.line
    }

    /// The secret argument alone.
    fn argument(&self) -> &[u8] {
        let end = self.line.len().saturating_sub(2);
        self.line.get(self.verb_len..end).unwrap_or_default()
    }

    /// The buffer as it is now (tests only: to show that wiping zeroes it).
    #[cfg(test)]
    fn raw(&self) -> &[u8] {
        &self.line
    }
}

impl Zeroize for SecretLine {
    fn zeroize(&mut self) {
        self.line.zeroize();
    }
}

impl Drop for SecretLine {
    fn drop(&mut self) {
        self.zeroize();
        #[cfg(test)]
        if let Some(seen) = self.on_drop.take() {
            seen(&self.line);
        }
    }
}

/// Its `Drop` is its `zeroize`.
impl ZeroizeOnDrop for SecretLine {}

impl fmt::Display for SecretLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label)
    }
}

impl fmt::Debug for SecretLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretLine").field(&self.label).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn the_line_is_the_command_and_prints_only_its_label() {
        let line = SecretLine::pass(&secret("hunter2"));
        assert_eq!(line.wire_bytes(), b"PASS hunter2\r\n");
        assert_eq!(line.argument(), b"hunter2");
        let command = Command::from(&line);
        for shown in [
            line.to_string(),
            format!("{line:?}"),
            format!("{line:#?}"),
            command.to_string(),
            format!("{command:?}"),
            format!("{command:#?}"),
            command.label().to_string(),
        ] {
            assert!(shown.contains("PASS ****"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(!command.has_line_break());
        assert!(Command::from(&SecretLine::pass(&secret("a\r\nDELE x"))).has_line_break());
        assert!(Command::from("NOOP\n").has_line_break());
        assert_eq!(Command::from("NOOP").label(), "NOOP");
    }

    #[test]
    fn zeroize_wipes_every_byte() {
        let mut line = SecretLine::pass(&secret("hunter2"));
        let len = line.raw().len();
        line.zeroize();
        assert_eq!(line.raw().len(), len, "wiped in place, not shortened");
        assert!(line.raw().iter().all(|&b| b == 0), "{:?}", line.raw());
    }

    #[test]
    fn drop_wipes_the_buffer() {
        let seen = Arc::new(Mutex::new(None));
        let mut line = SecretLine::pass(&secret("hunter2"));
        let record = seen.clone();
        line.on_drop = Some(Box::new(move |bytes: &[u8]| {
            *record.lock().unwrap() = Some(bytes.to_vec());
        }));
        drop(line);
        let bytes = seen.lock().unwrap().take().expect("drop ran");
        assert_eq!(bytes.len(), "PASS hunter2\r\n".len());
        assert!(bytes.iter().all(|&b| b == 0), "{bytes:?}");
    }
}

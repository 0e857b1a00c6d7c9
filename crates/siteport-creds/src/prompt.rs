//! How the library asks a person for something.

use secrecy::SecretString;

/// How the library asks a person for something. The CLI implements it with a hidden
/// terminal prompt; headless callers use [`NoPrompter`].
pub trait Prompter: Send + Sync {
    /// Asks for a secret without echo. `None` when nobody can answer (no terminal).
    fn secret(&self, prompt: &str) -> Option<SecretString>;
}

/// A prompter for headless use: never answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrompter;

impl Prompter for NoPrompter {
    fn secret(&self, _prompt: &str) -> Option<SecretString> {
        None
    }
}

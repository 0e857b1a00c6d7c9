//! The built-in backends. Remote ones are compiled only with their cargo feature.

pub mod dir;
pub mod env;
pub mod file;
#[cfg(feature = "keychain")]
pub mod keychain;
#[cfg(feature = "vault")]
pub mod vault;

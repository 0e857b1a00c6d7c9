//! The built-in backends. Remote ones are compiled only with their cargo feature; their
//! settings types are compiled always (Vault's and the keychain's as an empty placeholder
//! without their feature), so that every config parses in every build.

pub mod aws;
pub mod azure;
pub mod dir;
pub mod env;
pub mod file;
pub mod gcp;
#[cfg(feature = "keychain")]
pub mod keychain;
#[cfg(any(feature = "vault", feature = "aws", feature = "gcp", feature = "azure"))]
mod payload;
#[cfg(feature = "vault")]
pub mod vault;

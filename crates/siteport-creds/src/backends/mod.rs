//! The built-in backends. Remote ones are compiled only with their cargo feature.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
pub mod dir;
pub mod env;
pub mod file;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "keychain")]
pub mod keychain;
#[cfg(any(feature = "vault", feature = "aws", feature = "gcp", feature = "azure"))]
mod payload;
#[cfg(feature = "vault")]
pub mod vault;

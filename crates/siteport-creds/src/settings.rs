//! Every backend's settings, as read from the config's `[credentials.*]` tables. Each type
//! lives next to its backend; this module only gathers them.

use serde::{Deserialize, Serialize};

pub use crate::backends::dir::DirSettings;
pub use crate::backends::file::FileSettings;
#[cfg(feature = "keychain")]
pub use crate::backends::keychain::KeychainSettings;
#[cfg(feature = "vault")]
pub use crate::backends::vault::VaultSettings;
#[cfg(not(feature = "keychain"))]
pub use disabled::KeychainSettings;
#[cfg(not(feature = "vault"))]
pub use disabled::VaultSettings;

/// Settings of backends not built in: any table is accepted, so a config shared between builds
/// stays loadable; opening such a backend says which feature to build with.
#[allow(dead_code)]
mod disabled {
    use serde::{Deserialize, Serialize};
    /// `[credentials.vault]` in a build without the `vault` feature.
    pub type VaultSettings = Opaque;
    /// `[credentials.keychain]` in a build without the `keychain` feature.
    pub type KeychainSettings = Opaque;
    /// Any table; its keys are ignored.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Opaque {}
}

/// Every backend's settings, as read from the config's `[credentials.*]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSettings {
    /// `[credentials.file]`.
    #[serde(default)]
    pub file: FileSettings,
    /// `[credentials.dir]`.
    #[serde(default)]
    pub dir: DirSettings,
    /// `[credentials.aws]`.
    #[serde(default)]
    pub aws: crate::backends::aws::AwsSettings,
    /// `[credentials.gcp]`.
    #[serde(default)]
    pub gcp: crate::backends::gcp::GcpSettings,
    /// `[credentials.azure]`.
    #[serde(default)]
    pub azure: crate::backends::azure::AzureSettings,
    /// `[credentials.vault]` (read even when the `vault` feature is off, so configs stay valid).
    #[serde(default)]
    pub vault: VaultSettings,
    /// `[credentials.keychain]`.
    #[serde(default)]
    pub keychain: KeychainSettings,
}

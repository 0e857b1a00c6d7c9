//! Opening the backend(s) a [`BackendSpec`] names.

use std::sync::Arc;

use crate::backend::{BackendKind, CredentialBackend};
use crate::backends::{dir::DirBackend, env::EnvBackend, file::FileBackend};
use crate::chain::ChainBackend;
use crate::error::{Error, ErrorKind, Result};
use crate::prompt::Prompter;
use crate::remedy::Remedy;
use crate::settings::BackendSettings;
use crate::spec::BackendSpec;

/// Opens the backend(s) named by `spec`. Opening does no I/O beyond reading settings:
/// stores are unlocked and services contacted on first use.
pub fn open_backend(
    spec: &BackendSpec,
    settings: &BackendSettings,
    prompter: Arc<dyn Prompter>,
) -> Result<Box<dyn CredentialBackend>> {
    match spec {
        BackendSpec::Single(k) => open_one(*k, settings, prompter),
        BackendSpec::Chain(ks) => {
            let members = ks
                .iter()
                .map(|k| open_one(*k, settings, prompter.clone()))
                .collect::<Result<Vec<_>>>()?;
            Ok(Box::new(ChainBackend::new(members)))
        }
    }
}

fn open_one(
    kind: BackendKind,
    settings: &BackendSettings,
    prompter: Arc<dyn Prompter>,
) -> Result<Box<dyn CredentialBackend>> {
    match kind {
        BackendKind::File => Ok(Box::new(FileBackend::open(&settings.file, prompter)?)),
        BackendKind::Env => Ok(Box::new(EnvBackend::from_process_env())),
        BackendKind::Dir => Ok(Box::new(DirBackend::from_settings(&settings.dir))),
        #[cfg(feature = "aws")]
        BackendKind::Aws => Ok(Box::new(crate::backends::aws::AwsBackend::open(
            &settings.aws,
        )?)),
        #[cfg(feature = "gcp")]
        BackendKind::Gcp => Ok(Box::new(crate::backends::gcp::GcpBackend::open(
            &settings.gcp,
        )?)),
        #[cfg(feature = "azure")]
        BackendKind::Azure => Ok(Box::new(crate::backends::azure::AzureBackend::open(
            &settings.azure,
        )?)),
        #[cfg(feature = "vault")]
        BackendKind::Vault => Ok(Box::new(crate::backends::vault::VaultBackend::open(
            &settings.vault,
        )?)),
        #[cfg(feature = "keychain")]
        BackendKind::Keychain => Ok(Box::new(
            crate::backends::keychain::KeychainBackend::from_settings(&settings.keychain)?,
        )),
        // Unreachable only in a build with every backend feature on.
        #[allow(unreachable_patterns)]
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!("{other} backend"),
            "this backend is not built into this siteport binary",
        )
        .with_remedy(Remedy::RebuildWithFeature(other.to_string()))),
    }
}

#[cfg(all(test, not(feature = "azure")))]
mod tests {
    use super::*;
    use crate::backend::BackendKind;
    use crate::error::ErrorKind;
    use crate::prompt::NoPrompter;
    use crate::spec::BackendSpec;

    #[test]
    fn azure_without_the_feature_says_how_to_build_it() {
        let e = open_backend(
            &BackendSpec::Single(BackendKind::Azure),
            &BackendSettings::default(),
            Arc::new(NoPrompter),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("azure backend"), "{e}");
        assert_eq!(
            e.remedy(),
            Some(&crate::Remedy::RebuildWithFeature("azure".into())),
            "{e:?}"
        );
    }
}

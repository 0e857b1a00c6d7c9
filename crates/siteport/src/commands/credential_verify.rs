//! `credential add --verify`: log in with the new credential before it is stored, exactly as
//! `credential test` would after storing it (the servers of the sites that use the name, with
//! their TLS settings, else the credential's own host). Nothing is stored when a login fails.

use async_trait::async_trait;
use siteport_creds::{
    BackendKind, Credential, CredentialBackend, CredentialInfo, CredentialName, Health, StoreMode,
};

use crate::commands::credential_test::test_one;
use crate::context::Context;
use crate::error::CliResult;

/// A backend that answers `get` for the credential being added with that credential (not yet
/// stored anywhere) and passes everything else to the real one, so that sites resolve with it.
#[derive(Debug)]
struct Pending<'a> {
    inner: &'a dyn CredentialBackend,
    cred: &'a Credential,
}

#[async_trait]
impl CredentialBackend for Pending<'_> {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn is_writable(&self) -> bool {
        false
    }
    async fn get(&self, name: &CredentialName) -> siteport_creds::Result<Credential> {
        if name == self.cred.name() {
            Ok(self.cred.clone())
        } else {
            self.inner.get(name).await
        }
    }
    async fn store(&self, cred: &Credential, mode: StoreMode) -> siteport_creds::Result<()> {
        // Never called: verification only reads.
        self.inner.store(cred, mode).await
    }
    async fn delete(&self, name: &CredentialName) -> siteport_creds::Result<()> {
        self.inner.delete(name).await
    }
    async fn list(&self) -> siteport_creds::Result<Vec<CredentialInfo>> {
        self.inner.list().await
    }
    async fn check(&self) -> siteport_creds::Result<Health> {
        self.inner.check().await
    }
}

/// Logs in with `cred` on every server that would use it. The first failure is the error
/// (exit 4 for a refused login, 6 for the network, 2 when there is no server to try).
pub async fn verify(
    ctx: &Context,
    backend: &dyn CredentialBackend,
    cred: &Credential,
) -> CliResult {
    let cfg = ctx.optional_config()?;
    let pending = Pending {
        inner: backend,
        cred,
    };
    for o in test_one(&pending, cfg.as_ref(), cred.name()).await {
        if let Some(mut e) = o.error {
            e.message = format!("not stored: {}", e.message);
            return Err(e);
        }
        tracing::info!(credential = %o.name, server = ?o.server, site = ?o.site, "login verified");
    }
    Ok(())
}

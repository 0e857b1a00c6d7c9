//! PLACEHOLDER: being implemented.

use async_trait::async_trait;

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, Result};

/// PLACEHOLDER.
#[derive(Debug)]
pub struct DirBackend;

impl DirBackend {
    /// PLACEHOLDER.
    pub fn from_settings(_s: &crate::DirSettings) -> Self {
        Self
    }
}

#[async_trait]
impl CredentialBackend for DirBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Dir
    }
    fn describe(&self) -> String {
        "Dir backend".into()
    }
    fn is_writable(&self) -> bool {
        false
    }
    async fn get(&self, _name: &CredentialName) -> Result<Credential> {
        Err(Error::unsupported(self.describe(), "get"))
    }
    async fn store(&self, _cred: &Credential, _mode: StoreMode) -> Result<()> {
        Err(Error::unsupported(self.describe(), "store"))
    }
    async fn delete(&self, _name: &CredentialName) -> Result<()> {
        Err(Error::unsupported(self.describe(), "delete"))
    }
    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        Err(Error::unsupported(self.describe(), "list"))
    }
    async fn check(&self) -> Result<Health> {
        Err(Error::unsupported(self.describe(), "check"))
    }
}

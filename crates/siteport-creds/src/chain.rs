//! A chain of backends: `get` takes the first hit, `list` merges (first source wins and is
//! shown), `store` and `delete` go to the first writable backend.

use async_trait::async_trait;

use crate::backend::{BackendKind, CredentialBackend, CredentialInfo, Health, StoreMode};
use crate::credential::{Credential, CredentialName};
use crate::error::{Error, ErrorKind, Result};
use crate::remedy::Remedy;

/// Several backends consulted in order.
#[derive(Debug)]
pub struct ChainBackend {
    members: Vec<Box<dyn CredentialBackend>>,
}

impl ChainBackend {
    /// A chain over `members`, consulted in the given order.
    pub fn new(members: Vec<Box<dyn CredentialBackend>>) -> Self {
        Self { members }
    }

    /// The member backends, in order.
    pub fn members(&self) -> &[Box<dyn CredentialBackend>] {
        &self.members
    }

    fn first_writable(&self, op: &str) -> Result<&dyn CredentialBackend> {
        self.members
            .iter()
            .find(|m| m.is_writable())
            .map(|b| b.as_ref())
            .ok_or_else(|| {
                Error::unsupported(self.describe(), op)
                    .with_hint("add a writable backend such as `file` to the chain")
            })
    }
}

#[async_trait]
impl CredentialBackend for ChainBackend {
    fn kind(&self) -> BackendKind {
        // A chain has no kind of its own; report its first member's for display purposes.
        self.members
            .first()
            .map(|m| m.kind())
            .unwrap_or(BackendKind::File)
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self.members.iter().map(|m| m.describe()).collect();
        format!("backend chain [{}]", parts.join(", "))
    }

    fn is_writable(&self) -> bool {
        self.members.iter().any(|m| m.is_writable())
    }

    async fn get(&self, name: &CredentialName) -> Result<Credential> {
        let mut hints = Vec::new();
        for m in &self.members {
            match m.get(name).await {
                Ok(c) => return Ok(c),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if let Some(h) = e.hint() {
                        hints.push(format!("{}: {h}", m.kind()));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let e = Error::not_found(self.describe(), name);
        Err(match self.first_writable("store") {
            Ok(w) => e.with_remedy(Remedy::AddCredentialInto {
                name: name.clone(),
                backend: w.describe(),
            }),
            // No member can store it: `credential add` would fail, so relay how each member
            // can be given the credential instead.
            Err(_) if !hints.is_empty() => e.with_hint(hints.join("; or ")),
            Err(_) => e,
        })
    }

    async fn store(&self, cred: &Credential, mode: StoreMode) -> Result<()> {
        self.first_writable("store")?.store(cred, mode).await
    }

    async fn delete(&self, name: &CredentialName) -> Result<()> {
        self.first_writable("delete")?.delete(name).await
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>> {
        let mut out: Vec<CredentialInfo> = Vec::new();
        for m in &self.members {
            for info in m.list().await? {
                if !out.iter().any(|o| o.name == info.name) {
                    out.push(info);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn check(&self) -> Result<Health> {
        let mut h = Health::default();
        for m in &self.members {
            for n in m.check().await?.notes {
                h.notes.push(format!("{}: {n}", m.kind()));
            }
        }
        Ok(h)
    }
}

//! The CLI against each cloud secret manager's fake (moto for AWS, in-process fakes for GCP
//! Secret Manager and Azure Key Vault): one shared credential cycle and one export → import
//! cycle per cloud (`cloud/mod.rs`), plus each cloud's own failure cases (`cloud/<cloud>.rs`).
//! A cloud's cases compile only with its cargo feature.

mod common;

#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
mod cloud;

//! PLACEHOLDER: the shared backend conformance suite.

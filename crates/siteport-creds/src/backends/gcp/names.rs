//! Credential names to Secret Manager IDs and back (`_` → `__`, `.` → `_d`).

use crate::credential::{CredentialName, MAX_NAME_LEN};

/// Secret Manager's limit on secret IDs.
pub(super) const MAX_SECRET_ID: usize = 255;
/// The longest prefix that still leaves room for the longest mapped name.
pub const MAX_PREFIX_LEN: usize = MAX_SECRET_ID - 2 * MAX_NAME_LEN;

/// The secret ID part for credential `name` (without the prefix): `_` → `__`, `.` → `_d`.
pub fn encode_name(name: &CredentialName) -> String {
    let mut out = String::with_capacity(name.as_str().len() * 2);
    for c in name.as_str().chars() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_d"),
            c => out.push(c),
        }
    }
    out
}

/// The credential name a secret ID part (without the prefix) stands for, or `None` when it is
/// not the output of [`encode_name`] (a secret siteport did not write).
pub fn decode_name(id: &str) -> Option<CredentialName> {
    let mut out = String::with_capacity(id.len());
    let mut chars = id.chars();
    while let Some(c) = chars.next() {
        match c {
            '_' => match chars.next() {
                Some('_') => out.push('_'),
                Some('d') => out.push('.'),
                _ => return None,
            },
            c if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' => out.push(c),
            _ => return None,
        }
    }
    // Only the canonical form: `new` lowercases, which would make two IDs one name.
    CredentialName::new(&out)
        .ok()
        .filter(|n| n.as_str() == out && encode_name(n) == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_round_trips_and_rejects_foreign_ids() {
        for (n, id) in [
            ("acme", "acme"),
            ("shop.example-com", "shop_dexample-com"),
            ("beta_2", "beta__2"),
            ("a._.b", "a_d___db"),
        ] {
            let name = CredentialName::new(n).unwrap();
            assert_eq!(encode_name(&name), id);
            assert_eq!(decode_name(id), Some(name));
        }
        for bad in ["", "Acme", "a_x", "a_", "a.b", "_dx", "-a", "a b"] {
            assert_eq!(decode_name(bad), None, "{bad}");
        }
    }
}

//! The config's text changes, made with `toml_edit` so that every other key, comment and
//! format stays as written: a password becomes `credential = "NAME"` in its place, a url loses
//! its `user:pass@`, and secrets are masked as `****` for the diff.

use std::path::Path;

use siteport_creds::CredentialName;
use toml_edit::{DocumentMut, Item, Key, Table, Value};

use super::error::{MigrateError, MigrateErrorKind};
use super::plan::Rewrite;
use super::report::{Finding, SiteReport};

/// Replaces a value, keeping its surrounding whitespace and comments.
pub(super) fn replace_value(item: &mut Item, new: &str) {
    if let Some(v) = item.as_value_mut() {
        let decor = v.decor().clone();
        let mut nv = Value::from(new);
        *nv.decor_mut() = decor;
        *v = nv;
    }
}

pub(super) fn mask_password(t: &mut Table) {
    if let Some(item) = t.get_mut("password") {
        replace_value(item, "****");
    }
}

pub(super) fn mask_url(t: &mut Table) {
    let Some(item) = t.get_mut("url") else { return };
    let Some(url) = item.as_str() else { return };
    if let Some((start, at)) = userinfo_range(url) {
        let ui = &url[start..at];
        if let Some(colon) = ui.find(':') {
            let masked = format!("{}****{}", &url[..start + colon + 1], &url[at..]);
            replace_value(item, &masked);
        }
    }
}

/// Byte range of `user[:pass]` in `scheme://user[:pass]@host…` (the `@` excluded).
pub(super) fn userinfo_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let at = url[start..end].rfind('@')? + start;
    Some((start, at))
}

/// Applies the rewrite of one site: keeps every other key, comment and format untouched.
pub(super) fn rewrite_site(t: &mut Table, rw: Rewrite, name: &CredentialName) {
    let order: Vec<String> = t.iter().map(|(k, _)| k.to_owned()).collect();
    match rw {
        Rewrite::Password => {
            let Some((key, item)) = t.remove_entry("password") else {
                return;
            };
            let mut value = Value::from(name.as_str());
            if let Some(v) = item.as_value() {
                *value.decor_mut() = v.decor().clone();
            }
            let new_key = Key::new("credential").with_leaf_decor(key.leaf_decor().clone());
            t.insert_formatted(&new_key, Item::Value(value));
            let pos = |k: &str| {
                let k = if k == "credential" { "password" } else { k };
                order.iter().position(|o| o == k).unwrap_or(usize::MAX)
            };
            t.sort_values_by(|k1, _, k2, _| pos(k1.get()).cmp(&pos(k2.get())));
        }
        Rewrite::Url => {
            let Some(item) = t.get_mut("url") else { return };
            let Some(url) = item.as_str() else { return };
            let Some((start, at)) = userinfo_range(url) else {
                return;
            };
            let stripped = format!("{}{}", &url[..start], &url[at + 1..]);
            replace_value(item, &stripped);
            let (key_decor, value_prefix) = match t.get_key_value("url") {
                Some((k, i)) => (
                    k.leaf_decor().clone(),
                    i.as_value()
                        .and_then(|v| v.decor().prefix())
                        .and_then(|p| p.as_str())
                        .unwrap_or(" ")
                        .to_owned(),
                ),
                None => (Default::default(), " ".to_owned()),
            };
            let mut key_decor = key_decor;
            // The url key's prefix may carry comments above it: they stay with the url.
            let indent = key_decor
                .prefix()
                .and_then(|p| p.as_str())
                .map(|p| p.rsplit('\n').next().unwrap_or("").to_owned())
                .unwrap_or_default();
            key_decor.set_prefix(indent);
            let value = Value::from(name.as_str()).decorated(value_prefix, "");
            let new_key = Key::new("credential").with_leaf_decor(key_decor);
            t.insert_formatted(&new_key, Item::Value(value));
            let pos = |k: &str| match k {
                "credential" => order
                    .iter()
                    .position(|o| o == "url")
                    .map_or(usize::MAX, |p| 2 * p + 1),
                _ => order
                    .iter()
                    .position(|o| o == k)
                    .map_or(usize::MAX, |p| 2 * p),
            };
            t.sort_values_by(|k1, _, k2, _| pos(k1.get()).cmp(&pos(k2.get())));
        }
    }
}

/// The masked copy of the original document used as the "before" side of the diff.
pub(super) fn mask_all(mut doc: DocumentMut, sites: &[SiteReport]) -> DocumentMut {
    if let Some(aot) = doc.get_mut("site").and_then(Item::as_array_of_tables_mut) {
        for (t, s) in aot.iter_mut().zip(sites) {
            match s.finding {
                Finding::HardCoded => mask_password(t),
                Finding::UrlUserinfo => mask_url(t),
                _ => {}
            }
        }
    }
    doc
}

pub(super) fn parse_doc(text: &str, path: &Path) -> Result<DocumentMut, MigrateError> {
    text.parse::<DocumentMut>().map_err(|e| {
        MigrateError::new(
            MigrateErrorKind::Config,
            format!("{}: {}", path.display(), e.message()),
        )
    })
}

pub(super) fn not_aot(path: &Path) -> MigrateError {
    MigrateError::new(
        MigrateErrorKind::Config,
        format!(
            "{}: sites must be written as [[site]] tables for migrate to rewrite them",
            path.display()
        ),
    )
    .hint("turn `site = [{…}]` into one [[site]] table per site")
}

pub(super) fn site_table<'a>(
    doc: &'a DocumentMut,
    i: usize,
    path: &Path,
) -> Result<&'a Table, MigrateError> {
    doc.get("site")
        .and_then(Item::as_array_of_tables)
        .and_then(|a| a.get(i))
        .ok_or_else(|| not_aot(path))
}

pub(super) fn site_table_mut<'a>(
    doc: &'a mut DocumentMut,
    i: usize,
    path: &Path,
) -> Result<&'a mut Table, MigrateError> {
    doc.get_mut("site")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| a.get_mut(i))
        .ok_or_else(|| not_aot(path))
}

/// A unified diff (3 lines of context) from `old` to `new`, labelled with the config path.
pub fn unified_diff(path: &Path, old: &str, new: &str) -> String {
    let label = path.display().to_string();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&label, &format!("{label} (migrated)"))
        .to_string()
}

//! PLACEHOLDER: `${VAR}`, `${VAR:-default}`, `${cred:NAME#field}` and `$$` in config strings.

//! The `--credentials FILE` format: TOML with `[[credentials]]` tables mapping an access key to
//! its secret and the account it acts as (docs/design.md §2).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use kvs_core::ids::AccountId;
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct Credential {
    pub secret_access_key: String,
    pub account: AccountId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    credentials: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    access_key_id: String,
    secret_access_key: String,
    account_id: String,
}

pub type CredentialMap = HashMap<String, Credential>;

pub fn load(path: &Path) -> anyhow::Result<CredentialMap> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading credentials file {}", path.display()))?;
    parse(&text).with_context(|| format!("in credentials file {}", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<CredentialMap> {
    let file: File = toml::from_str(text)?;
    if file.credentials.is_empty() {
        bail!("no [[credentials]] entries");
    }
    let mut map = CredentialMap::new();
    for e in file.credentials {
        if e.access_key_id.is_empty() || e.secret_access_key.is_empty() {
            bail!("access_key_id and secret_access_key must not be empty");
        }
        let account = AccountId::parse(&e.account_id)
            .map_err(|err| anyhow::anyhow!("access key {}: {err}", e.access_key_id))?;
        let cred = Credential {
            secret_access_key: e.secret_access_key,
            account,
        };
        if map.insert(e.access_key_id.clone(), cred).is_some() {
            bail!("access key {} is listed twice", e.access_key_id);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_entries_and_rejects_bad_ones() {
        let m = parse(
            r#"
            [[credentials]]
            access_key_id = "AKIDA"
            secret_access_key = "sa"
            account_id = "111111111111"
            [[credentials]]
            access_key_id = "AKIDB"
            secret_access_key = "sb"
            account_id = "222222222222"
            "#,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["AKIDB"].account.as_str(), "222222222222");
        assert!(parse("").is_err());
        assert!(parse(
            "[[credentials]]\naccess_key_id=\"a\"\nsecret_access_key=\"b\"\naccount_id=\"12\""
        )
        .is_err());
        let dup = "[[credentials]]\naccess_key_id=\"a\"\nsecret_access_key=\"b\"\naccount_id=\"111111111111\"\n";
        assert!(parse(&format!("{dup}{dup}")).is_err());
    }
}

//! The `--credentials FILE` format: TOML with `[[credentials]]` tables mapping an access key to
//! its secret and the account it acts as (docs/design.md §2), and optionally the session token
//! the key must be used with (temporary credentials: AWS refuses a request whose
//! `X-Amz-Security-Token` is not the key's, or that has none when the key has one).

use std::collections::HashMap;
use std::path::Path;

use anyhow::bail;
use kvs_core::ids::AccountId;
use serde::Deserialize;

#[derive(Clone)]
pub struct Credential {
    pub secret_access_key: String,
    pub account: AccountId,
    /// When set, requests signed with this key must carry exactly this `X-Amz-Security-Token`;
    /// when not, they must carry none.
    pub session_token: Option<String>,
}

/// Secrets stay out of logs and panic messages: only whether they are set shows.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("secret_access_key", &"<redacted>")
            .field("account", &self.account)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
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
    #[serde(default)]
    session_token: Option<String>,
}

pub type CredentialMap = HashMap<String, Credential>;

pub fn load(path: &Path) -> anyhow::Result<CredentialMap> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        crate::startup::cannot_read("the credentials file", "--credentials", path, &e)
    })?;
    if let Some(mode) = loose_mode(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "the credentials file is readable or writable by other users; chmod 600 it (SECURITY.md)"
        );
    }
    parse(&text).map_err(|e| {
        let why = match e.downcast_ref::<toml::de::Error>() {
            Some(t) => crate::startup::toml_reason(t, Some(&text)),
            None => crate::startup::one_line(&e),
        };
        crate::startup::Refusal::new(
            format!("the credentials file {} is not valid", path.display()),
            why,
            "it holds [[credentials]] tables of access_key_id, secret_access_key and account_id \
             strings; see docs/behaviour.md",
        )
        .into()
    })
}

/// The file's permission bits when group or others have any access to it.
fn loose_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
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
        if e.session_token.as_deref() == Some("") {
            bail!(
                "access key {}: session_token must not be empty (leave it out instead)",
                e.access_key_id
            );
        }
        let cred = Credential {
            secret_access_key: e.secret_access_key,
            account,
            session_token: e.session_token,
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

    #[test]
    fn session_tokens_are_optional_and_never_empty() {
        let m = parse(
            r#"
            [[credentials]]
            access_key_id = "ASIATEMP"
            secret_access_key = "st"
            account_id = "111111111111"
            session_token = "FwoGZXIvYXdzEXAMPLE"
            [[credentials]]
            access_key_id = "AKIDLONG"
            secret_access_key = "sl"
            account_id = "111111111111"
            "#,
        )
        .unwrap();
        assert_eq!(
            m["ASIATEMP"].session_token.as_deref(),
            Some("FwoGZXIvYXdzEXAMPLE")
        );
        assert_eq!(m["AKIDLONG"].session_token, None);
        let empty = "[[credentials]]\naccess_key_id=\"a\"\nsecret_access_key=\"b\"\naccount_id=\"111111111111\"\nsession_token=\"\"\n";
        assert!(parse(empty).is_err());
    }

    #[test]
    fn debug_output_carries_no_secret() {
        let m = parse(
            r#"
            [[credentials]]
            access_key_id = "ASIATEMP"
            secret_access_key = "very-secret-key"
            account_id = "111111111111"
            session_token = "very-secret-token"
            "#,
        )
        .unwrap();
        for shown in [format!("{m:?}"), format!("{:#?}", m["ASIATEMP"])] {
            assert!(!shown.contains("very-secret"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains("111111111111"), "{shown}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn loose_permissions_are_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("kvs-creds-mode-{}", std::process::id()));
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(loose_mode(&path), Some(0o644));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(loose_mode(&path), None);
        let _ = std::fs::remove_file(&path);
    }
}

//! Console sessions (docs/console.md "Signing in"): a session is made by one SigV4-signed
//! request, verified like any API call, and then named by a random token in an `HttpOnly`,
//! `SameSite=Strict` cookie. The secret key never reaches the server; the token is never logged.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use kvs_core::ids::Namespace;
use tokio::time::Instant;

pub const COOKIE: &str = "kvs_console";
/// How long a session lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; overflow policy: expired ones go first, then the oldest.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub ns: Namespace,
    pub access_key_id: Option<String>,
    pub created: Instant,
}

#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.by_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session; returns its token.
    pub fn open(&self, ns: Namespace, access_key_id: Option<String>) -> String {
        let token = token();
        let now = Instant::now();
        let mut all = self.lock();
        if all.len() >= MAX_SESSIONS {
            all.retain(|_, s| now.duration_since(s.created) < LIFETIME);
            if all.len() >= MAX_SESSIONS {
                if let Some(oldest) = all
                    .iter()
                    .min_by_key(|(_, s)| s.created)
                    .map(|(t, _)| t.clone())
                {
                    all.remove(&oldest);
                }
            }
        }
        all.insert(
            token.clone(),
            Session {
                ns,
                access_key_id,
                created: now,
            },
        );
        token
    }

    pub fn get(&self, token: &str) -> Option<Session> {
        let mut all = self.lock();
        match all.get(token) {
            Some(s) if s.created.elapsed() < LIFETIME => Some(s.clone()),
            Some(_) => {
                all.remove(token);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, token: &str) {
        self.lock().remove(token);
    }
}

fn token() -> String {
    use rand::RngExt;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session token a request's `Cookie` header carries.
pub fn token_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value for `token` (`None`: clear it).
pub fn set_cookie(token: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => format!(
            "{COOKIE}={t}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvs_core::ids::{AccountId, Region};

    fn ns() -> Namespace {
        Namespace::new(
            AccountId::parse("111122223333").unwrap(),
            Region::parse("us-west-2").unwrap(),
        )
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_closed() {
        let s = Sessions::default();
        let t = s.open(ns(), Some("AKID".into()));
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            format!("a=b; {COOKIE}={t}; c=d").parse().unwrap(),
        );
        assert_eq!(token_of(&h).as_deref(), Some(t.as_str()));
        assert_eq!(s.get(&t).unwrap().access_key_id.as_deref(), Some("AKID"));
        s.close(&t);
        assert!(s.get(&t).is_none());
        h.insert(
            axum::http::header::COOKIE,
            format!("{COOKIE}=nothex").parse().unwrap(),
        );
        assert_eq!(token_of(&h), None);
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        assert_eq!(
            set_cookie(Some("ab"), true),
            "kvs_console=ab; Path=/console; HttpOnly; SameSite=Strict; Max-Age=43200; Secure"
        );
        assert_eq!(
            set_cookie(None, false),
            "kvs_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }
}

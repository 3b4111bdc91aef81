//! Tokens an emulator issued, with their lifetimes and whether they were used up.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// A token the emulator issued.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    /// `None`: no timer (WeChat refresh tokens live until re-authorization).
    pub expires_at: Option<DateTime<Utc>>,
    /// Used up: a rotated refresh token, a renewed Sugon token, a redeemed authorization code.
    pub spent: bool,
    /// What the token belongs to (an app, a company, an authorizer), where the emulator checks it.
    pub subject: String,
    /// The chain of rotations it belongs to: a login starts one, and a token issued right after another was spent
    /// (a rotation) continues its chain.
    pub family: u64,
}

/// Why a presented token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unknown,
    Spent,
    Expired,
    /// Its family was revoked: a spent token of it was presented again (reuse detection).
    Revoked,
}

#[derive(Debug, Default)]
pub(crate) struct Tokens {
    issued: HashMap<String, Issued>,
    /// The newest token issued.
    last: Option<String>,
    /// The family of the token spent last, which the next token issued continues.
    spent_family: Option<u64>,
    families: u64,
    revoked: HashSet<u64>,
}

impl Tokens {
    /// Issues a new token `prefix` + random hex, living `lifetime` (or forever).
    pub fn issue(
        &mut self,
        prefix: &str,
        now: DateTime<Utc>,
        lifetime: Option<TimeDelta>,
        subject: &str,
    ) -> String {
        let value = format!("{prefix}{}", random_hex());
        self.insert(value.clone(), now, lifetime, subject);
        value
    }

    /// Records a token whose value the emulator made itself (Sugon's JWTs, Ekuaibao's `ID_…:corp`).
    pub fn insert(
        &mut self,
        value: String,
        now: DateTime<Utc>,
        lifetime: Option<TimeDelta>,
        subject: &str,
    ) {
        let family = self.spent_family.take().unwrap_or_else(|| {
            self.families += 1;
            self.families
        });
        let issued = Issued {
            expires_at: lifetime.map(|l| now + l),
            spent: false,
            subject: subject.into(),
            family,
        };
        self.last = Some(value.clone());
        self.issued.insert(value, issued);
    }

    /// The token if it is known, not spent and not expired at `now`.
    pub fn check(&self, value: &str, now: DateTime<Utc>) -> Result<&Issued, Refusal> {
        let issued = self.issued.get(value).ok_or(Refusal::Unknown)?;
        if self.revoked.contains(&issued.family) {
            return Err(Refusal::Revoked);
        }
        if issued.spent {
            return Err(Refusal::Spent);
        }
        match issued.expires_at {
            Some(expires_at) if now > expires_at => Err(Refusal::Expired),
            _ => Ok(issued),
        }
    }

    /// The token whatever its state (for windows that extend past expiry).
    pub fn get(&self, value: &str) -> Option<&Issued> {
        self.issued.get(value)
    }

    /// The newest token issued, if any.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    pub fn spend(&mut self, value: &str) {
        if let Some(issued) = self.issued.get_mut(value) {
            issued.spent = true;
            self.spent_family = Some(issued.family);
        }
    }

    /// Reuse detection, as OAuth 2.1 servers do it: a spent token presented again revokes its whole family, so
    /// that whoever holds the newest token of it (the thief, or the client) must log in again. `true` if it did.
    pub fn revoke_family_if_spent(&mut self, value: &str) -> bool {
        match self.issued.get(value) {
            Some(issued) if issued.spent => self.revoked.insert(issued.family),
            _ => false,
        }
    }
}

/// 32 hex digits, unique within the process and unpredictable enough for a local emulator.
pub(crate) fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let (a, b) = (
        RandomState::new().hash_one(n),
        RandomState::new().hash_one((n, 1u8)),
    );
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_for_spent_and_expired() {
        let mut tokens = Tokens::default();
        let now = Utc::now();
        let token = tokens.issue("rt-", now, Some(TimeDelta::hours(1)), "app");
        assert!(token.starts_with("rt-") && token.len() == 35);
        assert!(tokens.check(&token, now).is_ok());
        assert_eq!(
            tokens.check(&token, now + TimeDelta::hours(2)).unwrap_err(),
            Refusal::Expired
        );
        tokens.spend(&token);
        assert_eq!(tokens.check(&token, now).unwrap_err(), Refusal::Spent);
        assert_eq!(tokens.check("nope", now).unwrap_err(), Refusal::Unknown);
        assert_ne!(random_hex(), random_hex());
    }

    /// A rotation continues the spent token's family; a spent token presented again revokes the family, and
    /// with it the newest token; another family is untouched.
    #[test]
    fn reusing_a_spent_token_revokes_its_family() {
        let mut tokens = Tokens::default();
        let now = Utc::now();
        let first = tokens.issue("rt-", now, None, "app");
        let other = tokens.issue("rt-", now, None, "app");
        tokens.spend(&first);
        let second = tokens.issue("rt-", now, None, "app");
        assert_eq!(
            tokens.get(&first).unwrap().family,
            tokens.get(&second).unwrap().family
        );
        assert_ne!(
            tokens.get(&first).unwrap().family,
            tokens.get(&other).unwrap().family
        );
        assert!(
            !tokens.revoke_family_if_spent(&second),
            "a live token revokes nothing"
        );
        assert!(tokens.check(&second, now).is_ok());
        assert!(tokens.revoke_family_if_spent(&first));
        assert_eq!(tokens.check(&second, now).unwrap_err(), Refusal::Revoked);
        assert!(tokens.check(&other, now).is_ok());
    }
}

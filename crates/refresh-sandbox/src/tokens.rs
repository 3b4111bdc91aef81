//! Tokens an emulator issued, with their lifetimes and whether they were used up.

use std::collections::HashMap;
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
}

/// Why a presented token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unknown,
    Spent,
    Expired,
}

#[derive(Debug, Default)]
pub(crate) struct Tokens {
    issued: HashMap<String, Issued>,
    /// The newest token issued.
    last: Option<String>,
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
        let issued = Issued {
            expires_at: lifetime.map(|l| now + l),
            spent: false,
            subject: subject.into(),
        };
        self.last = Some(value.clone());
        self.issued.insert(value, issued);
    }

    /// The token if it is known, not spent and not expired at `now`.
    pub fn check(&self, value: &str, now: DateTime<Utc>) -> Result<&Issued, Refusal> {
        let issued = self.issued.get(value).ok_or(Refusal::Unknown)?;
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
}

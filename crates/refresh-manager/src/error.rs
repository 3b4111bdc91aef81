//! Why the manager has no valid access token for a credential.

use std::sync::Arc;
use std::time::Duration;

use refresh_facade::{RefreshError, Vendor};

use crate::record::CredentialId;
use crate::store::StoreError;

/// Why the manager has no valid access token for a credential. Cheap to clone: callers that arrive while the
/// manager waits before trying again get the same error.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    #[error("no credential {0} is managed here")]
    Unknown(CredentialId),
    #[error("the store holds no tokens for {0}: log in first")]
    NotStored(CredentialId),
    /// The vendor refused or failed; the cached token, if still valid, stays in use.
    #[error(transparent)]
    Refresh(Arc<RefreshError>),
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The store's lock on the credential (a lease that lapses by itself) would end before a vendor call could
    /// finish, so the call was not sent: a vendor must never see one refresh token twice, and another holder may
    /// take a lapsed lease.
    #[error(
        "the store's lease on {0} would lapse before a vendor call could finish; the call was not sent"
    )]
    LeaseTooShort(CredentialId),
    /// The vendor's newest tokens were not valid for long enough to hand out (an expiry already past, or seconds
    /// away), and the next renewal waits for [`crate::RefreshPolicy::minimum_interval`] after the last one, so that
    /// nothing loops. Counted as an [`crate::observe::Anomaly::ShortLifetime`].
    #[error(
        "the vendor's newest tokens for {0} were issued (nearly) expired; the next renewal waits for the policy's minimum interval"
    )]
    ShortLived(CredentialId),
    /// The store holds tokens of another vendor under this credential's id: two configurations share one name.
    /// Nothing is sent or written until the configuration or the record is corrected.
    #[error(
        "the store's record of {id} holds {stored} tokens, but the credential is configured for {expected}; \
         nothing was sent: give one of them another name"
    )]
    WrongVendor {
        id: CredentialId,
        stored: Vendor,
        expected: Vendor,
    },
    /// A renewal task ended without an outcome (it panicked): a bug, never a vendor's or the store's answer.
    #[error("the renewal of {0} failed inside refresh-manager: {1}")]
    Internal(CredentialId, Arc<str>),
    /// The vendor answered, but its tokens could not be written: another writer came first, or (in a database
    /// store) another replica took the lease meanwhile, and the record holds no valid token yet. The answer was
    /// kept as an orphan; the manager tries again.
    #[error(
        "the vendor's answer for {0} lost to another writer and was kept as an orphan; the stored token is not valid yet"
    )]
    Superseded(CredentialId),
}

impl ManagerError {
    /// Only a new (interactive) login gets tokens again: the vendor refused the refresh token and the credential
    /// has no login of its own, or it was never stored.
    pub fn is_reauthorization_required(&self) -> bool {
        match self {
            ManagerError::Refresh(error) => error.is_reauthorization_required(),
            ManagerError::NotStored(_) => true,
            ManagerError::Unknown(_)
            | ManagerError::Store(_)
            | ManagerError::LeaseTooShort(_)
            | ManagerError::Superseded(_)
            | ManagerError::ShortLived(_)
            | ManagerError::WrongVendor { .. }
            | ManagerError::Internal(..) => false,
        }
    }

    /// The manager tries again by itself (after [`ManagerError::retry_after`] where the vendor said): a transient
    /// vendor failure, or a store that could not be read or written.
    pub fn is_retryable(&self) -> bool {
        match self {
            ManagerError::Refresh(error) => error.is_retryable(),
            ManagerError::Store(_)
            | ManagerError::LeaseTooShort(_)
            | ManagerError::Superseded(_)
            | ManagerError::ShortLived(_)
            | ManagerError::Internal(..) => true,
            ManagerError::Unknown(_)
            | ManagerError::NotStored(_)
            | ManagerError::WrongVendor { .. } => false,
        }
    }

    /// What the vendor asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ManagerError::Refresh(error) => error.retry_after(),
            _ => None,
        }
    }

    /// The vendor's error, if the vendor answered.
    pub fn refresh_error(&self) -> Option<&RefreshError> {
        match self {
            ManagerError::Refresh(error) => Some(error),
            _ => None,
        }
    }

    /// The outcome's name in metrics and status: the vendor error's kind, or `store_error`, `not_stored`,
    /// `unknown`, `lease_too_short`, `superseded`, `short_lived`, `wrong_vendor`, `internal`.
    pub fn outcome(&self) -> &'static str {
        match self {
            ManagerError::Refresh(error) => error.kind().as_str(),
            ManagerError::Store(_) => "store_error",
            ManagerError::NotStored(_) => "not_stored",
            ManagerError::Unknown(_) => "unknown",
            ManagerError::LeaseTooShort(_) => "lease_too_short",
            ManagerError::Superseded(_) => "superseded",
            ManagerError::ShortLived(_) => "short_lived",
            ManagerError::WrongVendor { .. } => "wrong_vendor",
            ManagerError::Internal(..) => "internal",
        }
    }
}

impl From<StoreError> for ManagerError {
    fn from(error: StoreError) -> Self {
        ManagerError::Store(Arc::new(error))
    }
}

impl From<RefreshError> for ManagerError {
    fn from(error: RefreshError) -> Self {
        ManagerError::Refresh(Arc::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_bookkeeping_errors_have_their_helpers() {
        let id = CredentialId::new("x").unwrap();
        let store = ManagerError::from(StoreError::Io(std::io::Error::other("disk full")));
        assert!(store.is_retryable() && !store.is_reauthorization_required());
        assert_eq!(
            (store.outcome(), store.retry_after()),
            ("store_error", None)
        );
        assert!(store.refresh_error().is_none());
        let unstored = ManagerError::NotStored(id.clone());
        assert!(unstored.is_reauthorization_required() && !unstored.is_retryable());
        assert_eq!(unstored.outcome(), "not_stored");
        let unknown = ManagerError::Unknown(id.clone());
        assert!(!unknown.is_reauthorization_required() && !unknown.is_retryable());
        assert_eq!(unknown.outcome(), "unknown");
        let superseded = ManagerError::Superseded(id.clone());
        assert!(superseded.is_retryable() && !superseded.is_reauthorization_required());
        assert_eq!(superseded.outcome(), "superseded");
        let lease = ManagerError::LeaseTooShort(id);
        assert!(lease.is_retryable() && !lease.is_reauthorization_required());
        assert_eq!(
            (lease.outcome(), lease.retry_after()),
            ("lease_too_short", None)
        );
    }
}

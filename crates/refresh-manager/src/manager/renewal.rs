//! The renewal protocol: tokens another process already stored are used as they are; otherwise, under the store's
//! lock, tokens the store refused earlier are written first, then the vendor is asked (a refresh, or the
//! credential's own login), and its tokens are durable before anyone sees them. It is one loop over [`Step`]s, each
//! of which says why it moves on.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use chrono::TimeDelta;
use refresh_facade::{Call, Grant, RefreshError, TokenSet};

use super::Manager;
use super::access_token::AccessToken;
use super::credential::{Credential, Unsaved};
use super::store_lock::HeldLock;
use crate::error::ManagerError;
use crate::observe::{self, Anomaly, Renewed};
use crate::record::{CredentialId, StoredTokens};
use crate::store::{Swap, TokenStore, Versioned};

/// Where a renewal under the store's lock stands.
enum Step {
    /// Just locked: a renewal that finished while this one waited for the lock may have left nothing to do.
    Locked,
    /// Tokens the store refused earlier (held in memory, or rescued by an earlier process), written before the
    /// vendor is asked anything: it may already have spent the stored refresh token.
    WriteUnsaved(Unsaved),
    /// The store's record as read under the lock (`None`: nothing stored yet).
    Examine(Option<Versioned>),
    /// A record whose token is used if it is valid now, and renewed otherwise.
    Adopt(Versioned),
    /// The record's renewal: a refresh while the vendor's window is open, else the credential's own login.
    Refresh(Versioned),
    /// The vendor refused the refresh of `record`: the store may have moved on meanwhile, an orphan may hold the
    /// tokens the vendor issued last, or the credential's login may mend it; else the refusal is the outcome.
    Refused {
        record: Versioned,
        error: ManagerError,
    },
    /// The credential's own login, replacing the record of version `expected` (`None`: none stored).
    Login { expected: Option<u64>, grant: Grant },
    /// The vendor's new tokens, to be made durable.
    Commit(Unsaved),
    /// The outcome.
    Done(Arc<AccessToken>, Renewed),
}

impl<S: TokenStore + 'static> Manager<S> {
    /// One renewal: tokens another process already stored are used as they are, read before any lock is taken;
    /// otherwise the protocol runs under the store's lock, which is let go (and awaited: a database lease is
    /// released, not left to lapse) before this returns.
    pub(super) async fn renew(
        &self,
        credential: &Credential,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        let holds_unsaved = credential.state().unsaved.is_some()
            || self
                .shared
                .rescue
                .as_ref()
                .is_some_and(|rescue| rescue.holds(&credential.id));
        if !holds_unsaved
            && let Some(record) = self.load(credential).await?
            && let Some(token) = self.adopt_fresh(credential, &record)
        {
            return Ok((token, Renewed::FromStore));
        }
        let held = self.lock_store(credential).await?;
        let result = self.renew_locked(credential, &held).await;
        self.let_go(credential, held).await;
        result
    }

    /// The protocol under the store's lock: steps until one is the outcome. It loops (rather than recursing)
    /// because a step may lead back to an earlier one: a record another writer stored while the vendor was asked is
    /// adopted, or renewed in turn. Each such turn follows a newer store version, so it ends.
    async fn renew_locked(
        &self,
        credential: &Credential,
        held: &HeldLock<S::Lock>,
    ) -> Result<(Arc<AccessToken>, Renewed), ManagerError> {
        let mut step = Step::Locked;
        loop {
            step = match step {
                Step::Done(token, renewed) => return Ok((token, renewed)),
                Step::Locked => self.locked(credential).await?,
                Step::WriteUnsaved(unsaved) => {
                    self.write_unsaved(credential, unsaved, held).await?
                }
                Step::Examine(record) => self.examine(credential, record, held).await?,
                Step::Adopt(record) => self.adopt(credential, record),
                Step::Refresh(record) => self.refresh(credential, record, held).await?,
                Step::Refused { record, error } => {
                    self.refused(credential, record, error, held).await?
                }
                Step::Login { expected, grant } => {
                    Step::Commit(self.log_in(credential, expected, &grant, held).await?)
                }
                Step::Commit(issued) => {
                    let (token, renewed) = self.commit(credential, issued, held).await?;
                    Step::Done(token, renewed)
                }
            };
        }
    }

    async fn locked(&self, credential: &Credential) -> Result<Step, ManagerError> {
        let clock = &self.shared.clock;
        if let Some(token) = credential.current.load_full()
            && token.fresh_at(clock.now(), clock.wall_millis())
        {
            // A renewal that finished while this one waited for the lock.
            return Ok(Step::Done(token, Renewed::FromStore));
        }
        let record = self.load(credential).await?;
        Ok(match self.take_unsaved(credential).await {
            Some(unsaved) => Step::WriteUnsaved(unsaved),
            None => Step::Examine(record),
        })
    }

    async fn write_unsaved(
        &self,
        credential: &Credential,
        unsaved: Unsaved,
        held: &HeldLock<S::Lock>,
    ) -> Result<Step, ManagerError> {
        match self.commit(credential, unsaved, held).await {
            Ok((token, renewed)) if token.is_valid(&self.shared.clock) => {
                return Ok(Step::Done(token, renewed));
            }
            // Stored, but not valid now (rescued long ago, or obtained on a clock ahead of this one): renew them.
            Ok(_) => {}
            // Kept as an orphan of a newer record that is not valid now (another process wrote it while the wall
            // clock was wrong): renew that one, still under the lock. Unless the lease lapsed: then a newer holder
            // fences this one, and renewing would race it.
            Err(ManagerError::Superseded(_)) if held.is_held(&self.shared.clock) => {}
            Err(error) => return Err(error),
        }
        Ok(Step::Examine(self.load(credential).await?))
    }

    async fn examine(
        &self,
        credential: &Credential,
        record: Option<Versioned>,
        held: &HeldLock<S::Lock>,
    ) -> Result<Step, ManagerError> {
        let Some(record) = record else {
            // Never stored: only a login of the credential's own obtains its first tokens.
            return match credential.login_grant() {
                Some(grant) => Ok(Step::Login {
                    expected: None,
                    grant,
                }),
                None => Err(ManagerError::NotStored(credential.id.clone())),
            };
        };
        let refusal = {
            let mut state = credential.state();
            state.seen_version = record.version;
            state.health.refused_for_good(record.version)
        };
        // Another process (or an earlier run) stored newer tokens than the cache holds.
        if let Some(token) = self.adopt_fresh(credential, &record) {
            return Ok(Step::Done(token, Renewed::FromStore));
        }
        let Some(refusal) = refusal else {
            return Ok(Step::Refresh(record));
        };
        // The vendor refused this version for good: it is not presented again, unless a vendor answer kept as an
        // orphan since holds tokens the vendor never saw refused.
        match self.promote_orphan(credential, &record, held).await? {
            Some(promoted) => Ok(Step::Adopt(promoted)),
            None => Err(refusal),
        }
    }

    fn adopt(&self, credential: &Credential, record: Versioned) -> Step {
        let token = self.token_of(credential, &record, None);
        if !token.is_valid(&self.shared.clock) {
            return Step::Refresh(record);
        }
        self.install(credential, Arc::clone(&token));
        Step::Done(token, Renewed::FromStore)
    }

    async fn refresh(
        &self,
        credential: &Credential,
        record: Versioned,
        held: &HeldLock<S::Lock>,
    ) -> Result<Step, ManagerError> {
        let login = credential.login_grant();
        let wall = self.shared.clock.wall();
        // A version the vendor already refused is not presented again (a login after it may have failed).
        let refused = credential.state().health.refused_version == Some(record.version);
        let refreshable = !refused
            && !record.tokens.refresh_token.is_blank()
            && record
                .tokens
                .refreshable_until
                .is_none_or(|until| wall < until);
        if !refreshable && let Some(grant) = login {
            tracing::info!(credential = %credential.id, "no refresh is possible any more: logging in again");
            return Ok(Step::Login {
                expected: Some(record.version),
                grant,
            });
        }
        self.shared.store.check_writable(&credential.id).await?;
        let sent = self.shared.clock.now();
        Ok(match self.vendor_refresh(credential, &record, held).await {
            Ok((tokens, anomalies)) => Step::Commit(Unsaved {
                refreshed_from: Some(record.version),
                tokens,
                sent: Some(sent),
                by_login: false,
                rescue_file: None,
                anomalies,
            }),
            Err(error) => Step::Refused { record, error },
        })
    }

    async fn refused(
        &self,
        credential: &Credential,
        record: Versioned,
        error: ManagerError,
        held: &HeldLock<S::Lock>,
    ) -> Result<Step, ManagerError> {
        // Before reporting a failure (above all "log in again"): if the store moved on meanwhile, someone else
        // rotated the credential, and its tokens are the answer. A refusal may also have left an orphan of this
        // version: the tokens the vendor issued last.
        match self.load(credential).await? {
            Some(newer) if newer.version > record.version => {
                credential.state().seen_version = newer.version;
                return Ok(Step::Adopt(newer));
            }
            Some(current) if error.is_reauthorization_required() => {
                if let Some(promoted) = self.promote_orphan(credential, &current, held).await? {
                    return Ok(Step::Adopt(promoted));
                }
            }
            _ => {}
        }
        if let Some(grant) = credential.login_grant()
            && self.log_in_after(credential, &error, record.version)
        {
            credential.state().health.refused_version = Some(record.version);
            tracing::info!(credential = %credential.id, %error, "the vendor refused the refresh token: logging in again");
            return Ok(Step::Login {
                expected: Some(record.version),
                grant,
            });
        }
        Err(error)
    }

    /// The credential's own login: a store that could not keep the answer must not cost a login either (an
    /// authorization code is single-use).
    pub(super) async fn log_in(
        &self,
        credential: &Credential,
        expected: Option<u64>,
        grant: &Grant,
        held: &HeldLock<S::Lock>,
    ) -> Result<Unsaved, ManagerError> {
        self.shared.store.check_writable(&credential.id).await?;
        let sent = self.shared.clock.now();
        let obtained = credential.options.refresher.obtain(grant);
        let tokens = self
            .call_vendor(credential, Call::Login, obtained, held)
            .await?;
        let (stored, anomalies) = self.stored(credential, &tokens);
        Ok(Unsaved {
            refreshed_from: expected,
            tokens: stored,
            sent: Some(sent),
            by_login: true,
            rescue_file: None,
            anomalies,
        })
    }

    /// The record of `credential`, if the store has one: an error if it is another vendor's.
    pub(super) async fn load(
        &self,
        credential: &Credential,
    ) -> Result<Option<Versioned>, ManagerError> {
        let record = self.shared.store.load(&credential.id).await?;
        if let Some(record) = &record
            && record.tokens.vendor != credential.vendor()
        {
            return Err(ManagerError::WrongVendor {
                id: credential.id.clone(),
                stored: record.tokens.vendor,
                expected: credential.vendor(),
            });
        }
        Ok(record)
    }

    /// `record`'s token, installed, if the store holds newer tokens than the cache and they are not due yet.
    fn adopt_fresh(&self, credential: &Credential, record: &Versioned) -> Option<Arc<AccessToken>> {
        let clock = &self.shared.clock;
        let cached = credential
            .current
            .load()
            .as_ref()
            .map(|token| token.version);
        let refused = credential.state().refused_through;
        if record.version <= refused || cached.is_some_and(|cached| record.version <= cached) {
            return None;
        }
        let token = self.token_of(credential, record, None);
        let (now, wall_ms) = (clock.now(), clock.wall_millis());
        if !token.valid_at(now, wall_ms) {
            return None;
        }
        self.install(credential, Arc::clone(&token));
        token.fresh_at(now, wall_ms).then_some(token)
    }

    /// After the vendor refused `record`'s refresh token: the newest orphan that lost to this very version (a
    /// vendor answer whose write was refused, say a replica's that was paused past its lease) holds the tokens the
    /// vendor issued last, whose refresh token it has never seen. They become the record's next version.
    async fn promote_orphan(
        &self,
        credential: &Credential,
        record: &Versioned,
        held: &HeldLock<S::Lock>,
    ) -> Result<Option<Versioned>, ManagerError> {
        let refused = record.tokens.refresh_token.expose_secret();
        let Some(orphan) = record.orphans.iter().rev().find(|orphan| {
            orphan.lost_to_version == record.version
                && orphan.tokens.refresh_token.expose_secret() != refused
                && !orphan.tokens.refresh_token.is_blank()
        }) else {
            return Ok(None);
        };
        let (store, id) = (&self.shared.store, &credential.id);
        match store
            .compare_and_swap(held.lock(), Some(record.version), &orphan.tokens)
            .await?
        {
            Swap::Written { version } => {
                tracing::warn!(credential = %id, version, "the vendor refused the stored refresh token; \
                    the tokens it issued last, kept as an orphan, are the record now");
                credential.state().seen_version = version;
                Ok(Some(Versioned::with_orphans(
                    version,
                    orphan.tokens.clone(),
                    record.orphans.clone(),
                )))
            }
            // Someone else wrote meanwhile: theirs are newer.
            Swap::Conflict { current } => {
                Ok(current.filter(|current| current.version > record.version))
            }
        }
    }

    /// The vendor's refresh of `record`, presenting the component token where the credential has one, renewed
    /// once if WeChat says it expired.
    async fn vendor_refresh(
        &self,
        credential: &Credential,
        record: &Versioned,
        held: &HeldLock<S::Lock>,
    ) -> Result<(StoredTokens, Vec<refresh_facade::Anomaly>), ManagerError> {
        let refresher = &credential.options.refresher;
        let mut grant = record.tokens.grant();
        let Some(component_id) = &credential.options.component else {
            let tokens = self
                .call_vendor(credential, Call::Refresh, refresher.refresh(&grant), held)
                .await?;
            return Ok(self.stored(credential, &tokens));
        };
        let component = self.component_token(component_id, None).await?;
        grant.component_access_token = Some(component.secret.clone());
        let tokens = match self
            .call_vendor(credential, Call::Refresh, refresher.refresh(&grant), held)
            .await
        {
            Err(ManagerError::Refresh(error)) if error.is_component_token_expired() => {
                tracing::info!(credential = %credential.id, component = %component_id,
                    "WeChat says the component token expired: renewing it and trying once more");
                let renewed = self
                    .component_token(component_id, Some(component.version))
                    .await?;
                grant.component_access_token = Some(renewed.secret.clone());
                self.call_vendor(credential, Call::Refresh, refresher.refresh(&grant), held)
                    .await?
            }
            result => result?,
        };
        Ok(self.stored(credential, &tokens))
    }

    /// The component credential's valid token; with `refused`, one newer than that version, which the vendor
    /// refused. The component is another credential with its own renewal, which this one waits for.
    async fn component_token(
        &self,
        id: &CredentialId,
        refused: Option<u64>,
    ) -> Result<Arc<AccessToken>, ManagerError> {
        let Some(version) = refused else {
            return self.access_token(id).await;
        };
        let component = self.credential(id)?;
        {
            let mut state = component.state();
            state.refused_through = state.refused_through.max(version);
            state.health = Default::default();
        }
        let cached = component.current.load().as_ref().map(|token| token.version);
        if cached.is_some_and(|cached| cached <= version) {
            component.withdraw();
        }
        self.flight(&component)?.await
    }

    /// The vendor's tokens as the store keeps them. Their instants are on this process's wall clock, unless the
    /// vendor's clock (its answer's `Date`) disagrees with it by more than the skew allowed between writers: then
    /// on the vendor's, which their expiry follows. Other replicas read the record with their own clocks, and one
    /// replica whose clock is hours off must not make them serve tokens past their end.
    /// With them, the answer's anomalies, counted here once.
    fn stored(
        &self,
        credential: &Credential,
        tokens: &TokenSet,
    ) -> (StoredTokens, Vec<refresh_facade::Anomaly>) {
        for anomaly in tokens.anomalies() {
            observe::answer_anomaly(credential.vendor(), anomaly);
        }
        (
            self.on_one_clock(credential, tokens),
            tokens.anomalies().to_vec(),
        )
    }

    /// The tokens with their instants on one clock, as [`Manager::stored`] says.
    fn on_one_clock(&self, credential: &Credential, tokens: &TokenSet) -> StoredTokens {
        let skew = TimeDelta::from_std(self.shared.clock_skew).unwrap_or(TimeDelta::MAX);
        match tokens.vendor_clock_ahead {
            Some(ahead) if ahead.abs() > skew => {
                observe::anomaly(credential.vendor(), Anomaly::ClockOffTheVendors);
                tracing::warn!(credential = %credential.id, vendor_ahead_s = ahead.num_seconds(),
                    "this machine's wall clock disagrees with the vendor's: storing the tokens on the vendor's clock");
                StoredTokens::from(&tokens.moved_by(ahead))
            }
            _ => StoredTokens::from(tokens),
        }
    }

    /// One call to the vendor, under the manager's limit of concurrent calls, counted and timed, and given up
    /// after the refresher's call timeout: the one timeout of the credential, which the lease check also uses, so
    /// that no answer can arrive after the lease `held` lapses.
    async fn call_vendor<T>(
        &self,
        credential: &Credential,
        operation: Call,
        call: impl Future<Output = Result<T, RefreshError>>,
        held: &HeldLock<S::Lock>,
    ) -> Result<T, ManagerError> {
        // The semaphore is never closed; were it, the call would go ahead unlimited rather than fail.
        let _permit = self.shared.calls.acquire().await.ok();
        let timeout = credential.options.refresher.call_timeout();
        if held
            .lease_end()
            .is_some_and(|end| self.shared.clock.now().after(timeout) >= end)
        {
            tracing::warn!(credential = %credential.id, "the store's lease would lapse before the vendor answered: not sending");
            return Err(ManagerError::LeaseTooShort(credential.id.clone()));
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => {
                let error = RefreshError::timed_out(credential.vendor(), timeout);
                Err(if operation == Call::Login {
                    error.during_login()
                } else {
                    error
                })
            }
        };
        let outcome = result.as_ref().map_or_else(|e| e.kind().as_str(), |_| "ok");
        observe::vendor_call(credential.vendor(), operation, outcome, started.elapsed());
        Ok(result?)
    }
}

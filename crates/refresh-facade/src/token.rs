//! The normalized result of a refresh.

use chrono::{DateTime, TimeDelta, Utc};

use refresh_runtime::Secret;

use crate::vendor::{RefreshWindow, Vendor};
use crate::vendors;

/// Fresh tokens from any vendor, in one shape.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TokenSet {
    pub vendor: Vendor,
    pub access_token: Secret,
    /// The token to refresh with next time: the vendor's new one, or the old one carried over where the vendor
    /// returned none (see [`TokenSet::rotation`]). For Sugon AC, whose token renews itself, the access token.
    /// Empty for a credential that is obtained again instead of refreshed ([`Rotation::NotRefreshable`]).
    pub refresh_token: Secret,
    /// The vendor's token type, where it says one ("bearer").
    pub token_type: Option<String>,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// Where `expires_at` comes from.
    pub expiry_source: ExpirySource,
    /// When the refresh (or login) request was sent: relative lifetimes count from here.
    pub obtained_at: DateTime<Utc>,
    /// The last moment a refresh can succeed, where the vendor's window and the answer fix one
    /// ([`Vendor::refresh_window`]); `None` where no deadline is known. Past it, a new login is needed.
    pub refreshable_until: Option<DateTime<Utc>>,
    pub rotation: Rotation,
    /// What else the vendor said, typed.
    pub extras: VendorExtras,
    /// How far the vendor's clock was ahead of the refresher's when it answered (negative: behind), by the `Date`
    /// header of its answer (one second's resolution, less the answer's way back); `None` without a readable one.
    /// `expires_at` and `obtained_at` are on the refresher's clock: a store shared by replicas needs them on one
    /// clock, and this says how far off this one was.
    pub vendor_clock_ahead: Option<TimeDelta>,
    /// What in the vendor's answer did not match its documentation (a field of another JSON type, an
    /// unreadable expiry), when the tokens were read from the fields the spec marks instead of the typed
    /// answer. Empty for an answer as documented. Never holds a token or any other value of the answer.
    pub anomalies: Vec<crate::Anomaly>,
}

impl TokenSet {
    /// True when the vendor returned a new refresh token (the old one may be used up).
    pub fn rotated(&self) -> bool {
        self.rotation == Rotation::Rotated
    }

    /// What in the vendor's answer did not match its documentation; empty when everything did.
    pub fn anomalies(&self) -> &[crate::Anomaly] {
        &self.anomalies
    }

    /// The same tokens with the instants read on the refresher's clock moved by `by` (onto the vendor's clock,
    /// with `by` = [`TokenSet::vendor_clock_ahead`]); instants the vendor stated itself stay as they are. Moved:
    /// `obtained_at`; `expires_at` when it counts from the send ([`ExpirySource::LifetimeSeconds`],
    /// [`ExpirySource::ConservativeDefault`]); `refreshable_until` when it was counted from either of those.
    pub fn moved_by(&self, by: TimeDelta) -> TokenSet {
        let from_send = matches!(
            self.expiry_source,
            ExpirySource::LifetimeSeconds | ExpirySource::ConservativeDefault
        );
        let window_from_send = match self.vendor.refresh_window() {
            // The refresh token's lifetime counts from the send when it was issued with these tokens; a deadline
            // carried over from the last record is already on whatever clock that record was written on.
            Some(RefreshWindow::WhileRefreshTokenLives { .. }) => {
                matches!(self.rotation, Rotation::Rotated | Rotation::Issued)
            }
            Some(
                RefreshWindow::UntilAccessTokenExpiry
                | RefreshWindow::AfterAccessTokenExpiry { .. },
            ) => from_send,
            None => false,
        };
        let mut moved = self.clone();
        moved.obtained_at = self.obtained_at + by;
        if from_send {
            moved.expires_at = self.expires_at + by;
        }
        if window_from_send {
            moved.refreshable_until = self.refreshable_until.map(|until| until + by);
        }
        moved
    }

    /// True when, at `now`, the vendor's window still allows a refresh (unknown deadlines count as open). Never
    /// for a credential that is obtained again instead ([`Rotation::NotRefreshable`]).
    pub fn can_refresh_at(&self, now: DateTime<Utc>) -> bool {
        self.rotation != Rotation::NotRefreshable
            && self
                .refreshable_until
                .is_none_or(|deadline| now <= deadline)
    }
}

/// What happened to the refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The vendor returned a new refresh token; keep it, the old one may no longer work.
    Rotated,
    /// The vendor returned the refresh token it was given.
    Unchanged,
    /// The vendor returned no refresh token; the old one was carried over and stays valid.
    CarriedOver,
    /// The first tokens, from a login ([`crate::Refresher::obtain`]).
    Issued,
    /// The credential is obtained again, never refreshed (WeChat's component access token): `refresh_token` is
    /// empty, and [`TokenSet::can_refresh_at`] is always false.
    NotRefreshable,
}

impl Rotation {
    /// The rotation's name in snake case (`carried_over`).
    pub fn as_str(self) -> &'static str {
        match self {
            Rotation::Rotated => "rotated",
            Rotation::Unchanged => "unchanged",
            Rotation::CarriedOver => "carried_over",
            Rotation::Issued => "issued",
            Rotation::NotRefreshable => "not_refreshable",
        }
    }
}

/// Where a [`TokenSet::expires_at`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpirySource {
    /// A lifetime in seconds (`expires_in`), counted from when the request was sent.
    LifetimeSeconds,
    /// An absolute instant the vendor sent (MISA's `Expire_Date`, Ekuaibao's `expireTime`).
    VendorInstant,
    /// The `expireTime` claim of the token itself (Sugon AC's JWT; read, not verified).
    TokenClaim,
    /// The vendor said nothing readable: [`crate::CONSERVATIVE_LIFETIME`] from when the request was sent.
    ConservativeDefault,
}

macro_rules! vendor_extras {
    ([] $($(#[$doc:meta])* $variant:ident $name:literal $module:ident $config:ident $extras:ident,)*) => {
        /// What a vendor says besides the tokens, in typed form (each vendor's struct is documented with it).
        #[derive(Clone, Debug)]
        #[non_exhaustive]
        pub enum VendorExtras {
            $(
                $(#[$doc])*
                #[cfg(feature = $name)]
                $variant(vendors::$module::$extras),
            )*
        }
    };
}

for_each_vendor!(vendor_extras);

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the command line prints (`rotation`): snake case, one per rotation.
    #[test]
    fn rotations_have_stable_snake_case_names() {
        let names = [
            Rotation::Rotated,
            Rotation::Unchanged,
            Rotation::CarriedOver,
            Rotation::Issued,
            Rotation::NotRefreshable,
        ]
        .map(Rotation::as_str);
        assert_eq!(
            names,
            [
                "rotated",
                "unchanged",
                "carried_over",
                "issued",
                "not_refreshable"
            ]
        );
    }

    /// `moved_by` moves what was read on our clock and leaves what the vendor stated: a lifetime's expiry and the
    /// windows counted from it or from the send move; a vendor's instant, and windows counted from it or carried
    /// over from the last record, stay.
    #[cfg(all(
        feature = "isolarcloud",
        feature = "sugon-ac",
        feature = "ekuaibao",
        feature = "misa-cukcuk"
    ))]
    #[test]
    fn moved_by_moves_only_what_was_read_on_our_clock() {
        let at = |hour: u32| {
            DateTime::parse_from_rfc3339(&format!("2026-12-06T{hour:02}:00:00Z"))
                .unwrap()
                .with_timezone(&Utc)
        };
        let tokens = |vendor, source, rotation| TokenSet {
            vendor,
            access_token: Secret::from("access"),
            refresh_token: Secret::from("refresh"),
            token_type: None,
            expires_at: at(12),
            expiry_source: source,
            obtained_at: at(10),
            refreshable_until: Some(at(14)),
            rotation,
            extras: VendorExtras::Ekuaibao(vendors::ekuaibao::EkuaibaoExtras {
                corporation_id: None,
            }),
            vendor_clock_ahead: None,
            anomalies: Vec::new(),
        };
        let by = TimeDelta::hours(-8);
        let moved = |vendor, source, rotation| {
            let moved = tokens(vendor, source, rotation).moved_by(by);
            (moved.obtained_at, moved.expires_at, moved.refreshable_until)
        };
        use ExpirySource::*;
        // iSolarCloud: a lifetime in seconds; its refresh token's own lifetime counts from the send when issued.
        assert_eq!(
            moved(Vendor::ISolarCloud, LifetimeSeconds, Rotation::Rotated),
            (at(2), at(4), Some(at(6)))
        );
        assert_eq!(
            moved(Vendor::ISolarCloud, LifetimeSeconds, Rotation::CarriedOver),
            (at(2), at(4), Some(at(14))),
            "a deadline carried over from the last record stays"
        );
        // Sugon AC: the token's claim, and a window counted from it.
        assert_eq!(
            moved(Vendor::SugonAc, TokenClaim, Rotation::Rotated),
            (at(2), at(12), Some(at(14)))
        );
        assert_eq!(
            moved(Vendor::SugonAc, ConservativeDefault, Rotation::Rotated),
            (at(2), at(4), Some(at(6))),
            "an assumed lifetime counts from the send"
        );
        // Ekuaibao: the vendor's instant, a window until it.
        assert_eq!(
            moved(Vendor::Ekuaibao, VendorInstant, Rotation::Rotated),
            (at(2), at(12), Some(at(14)))
        );
        // MISA CukCuk: no known window deadline of its own is moved unless issued with these tokens.
        assert_eq!(
            moved(Vendor::MisaCukcuk, VendorInstant, Rotation::Unchanged),
            (at(2), at(12), Some(at(14)))
        );
    }
}

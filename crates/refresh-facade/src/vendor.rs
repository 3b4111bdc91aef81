//! The vendors, and how long each lets a token be refreshed.

use std::fmt;
use std::time::Duration;

macro_rules! vendor_enum {
    ([] $($(#[$doc:meta])* $variant:ident $name:literal $module:ident $config:ident $extras:ident,)*) => {
        /// A token vendor. Every vendor is listed whatever features are on, so that tokens and errors can always
        /// name theirs; a [`crate::VendorConfig`] exists only for the vendors whose feature is on.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[non_exhaustive]
        pub enum Vendor {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        impl Vendor {
            /// Every vendor, in a stable order.
            pub const ALL: [Vendor; [$($name),*].len()] = [$(Vendor::$variant),*];

            /// The vendor's short name, as in configuration, specs and crate names (`sugon-ac`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Vendor::$variant => $name,)*
                }
            }
        }
    };
}

for_each_vendor!(vendor_enum);

impl Vendor {
    /// How long the vendor lets a token be refreshed (see [`RefreshWindow`]); `None` when the vendor's cargo
    /// feature is off. Each vendor's window is documented in its file under `src/vendors/`.
    pub fn refresh_window(self) -> Option<RefreshWindow> {
        crate::vendors::refresh_window(self)
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Vendor {
    type Err = UnknownVendor;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Vendor::ALL
            .into_iter()
            .find(|v| v.as_str() == name)
            .ok_or_else(|| UnknownVendor(name.to_owned()))
    }
}

/// A vendor name that is not one of [`Vendor::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown vendor {0:?} (known: {known})", known = Vendor::ALL.map(Vendor::as_str).join(", "))]
pub struct UnknownVendor(pub String);

/// Until when a vendor accepts a refresh. Past it, only a new login (authorization) gets tokens again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshWindow {
    /// Only while the access token is still valid (Ekuaibao).
    UntilAccessTokenExpiry,
    /// Until `grace` after the access token expired (Sugon AC: 24 hours).
    AfterAccessTokenExpiry { grace: Duration },
    /// While the refresh token lives: `lifetime` from when it was issued, or `None` where the vendor sets no
    /// timer (WeChat: until the user authorizes again) or documents none (MISA).
    WhileRefreshTokenLives { lifetime: Option<Duration> },
}

//! The one list of vendors. Every list of vendors in the facade is made from it: the [`crate::Vendor`] enum and its
//! names, [`crate::VendorConfig`], [`crate::VendorExtras`], the refresher's adapters and their dispatch, the
//! kind maps, the refresh windows and the crate root's re-exports. A vendor's own rules stay in its file, `vendors/<module>.rs`, under names
//! the table relies on: `Adapter` (`new`, `refresh`, `obtain`), `CODE_KINDS` and `REFRESH_WINDOW`; the file starts
//! with `#![cfg(feature = "<name>")]`, and `vendors/mod.rs` declares it (a module declared by a macro would be
//! out of rustfmt's reach).

/// Calls `$then! { [$extra] rows }`, one row per vendor: its doc, its [`crate::Vendor`] variant, its name (which
/// is also its cargo feature, its spec's file name and its crate's suffix), its module under `vendors/`, and its
/// public configuration and extras types.
macro_rules! for_each_vendor {
    ($then:ident $([$($extra:tt)*])?) => {
        $then! {
            [$($($extra)*)?]
            /// Sungrow iSolarCloud.
            ISolarCloud "isolarcloud" isolarcloud ISolarCloudConfig ISolarCloudExtras,
            /// Sugon / SCNet AC.
            SugonAc "sugon-ac" sugon_ac SugonAcConfig SugonAcExtras,
            /// MISA CukCuk Graph API v2.
            MisaCukcuk "misa-cukcuk" misa_cukcuk MisaCukcukConfig MisaCukcukExtras,
            /// WeChat Open Platform, third-party platform.
            WechatOpen "wechat-open" wechat_open WechatOpenConfig WechatOpenExtras,
            /// Ekuaibao (Hose).
            Ekuaibao "ekuaibao" ekuaibao EkuaibaoConfig EkuaibaoExtras,
        }
    };
}

/// The compile error of a build with no vendor, and the crate root's re-exports of each vendor's public types.
macro_rules! vendor_exports {
    ([] $($(#[$doc:meta])* $variant:ident $name:literal $module:ident $config:ident $extras:ident,)*) => {
        #[cfg(not(any($(feature = $name),*)))]
        compile_error!(concat!("refresh-facade needs at least one vendor feature:" $(, " ", $name)*));

        $(
            #[cfg(feature = $name)]
            pub use vendors::$module::{$config, $extras};
        )*
    };
}

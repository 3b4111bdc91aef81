//! The one entry point: a [`Refresher`] built from a [`VendorConfig`].
//!
//! An enum over vendor adapters rather than a trait object: the set of vendors is closed and known at compile
//! time (one cargo feature each), configuration picks one at run time, and a `match` makes every vendor handle
//! every concern with no boxing or dynamic dispatch. See ARCHITECTURE.md.

use std::time::Instant;

use tracing::Instrument;

use crate::config::{ConfigError, HttpOptions, VendorConfig};
use crate::error::RefreshError;
use crate::grant::RefreshGrant;
use crate::token::TokenSet;
use crate::vendor::Vendor;
use crate::vendors;

/// Refreshes tokens at one vendor, as configured.
#[derive(Clone, Debug)]
pub struct Refresher {
    vendor: Vendor,
    adapter: Adapter,
}

#[derive(Clone, Debug)]
enum Adapter {
    #[cfg(feature = "isolarcloud")]
    ISolarCloud(vendors::isolarcloud::Adapter),
    #[cfg(feature = "sugon-ac")]
    SugonAc(vendors::sugon_ac::Adapter),
    #[cfg(feature = "misa-cukcuk")]
    MisaCukcuk(vendors::misa_cukcuk::Adapter),
    #[cfg(feature = "wechat-open")]
    WechatOpen(vendors::wechat_open::Adapter),
    #[cfg(feature = "ekuaibao")]
    Ekuaibao(vendors::ekuaibao::Adapter),
}

impl Refresher {
    /// A refresher with its own HTTP client ([`HttpOptions::default`]).
    pub fn new(config: VendorConfig) -> Result<Self, ConfigError> {
        Self::with_http_client(config, HttpOptions::default().build_client()?)
    }

    /// A refresher that uses `http` (build it with [`HttpOptions::build_client`] and share it between
    /// refreshers: connections are reused).
    pub fn with_http_client(
        config: VendorConfig,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let vendor = config.vendor();
        let adapter = match config {
            #[cfg(feature = "isolarcloud")]
            VendorConfig::ISolarCloud(config) => {
                Adapter::ISolarCloud(vendors::isolarcloud::Adapter::new(config, http)?)
            }
            #[cfg(feature = "sugon-ac")]
            VendorConfig::SugonAc(config) => {
                Adapter::SugonAc(vendors::sugon_ac::Adapter::new(config, http)?)
            }
            #[cfg(feature = "misa-cukcuk")]
            VendorConfig::MisaCukcuk(config) => {
                Adapter::MisaCukcuk(vendors::misa_cukcuk::Adapter::new(config, http)?)
            }
            #[cfg(feature = "wechat-open")]
            VendorConfig::WechatOpen(config) => {
                Adapter::WechatOpen(vendors::wechat_open::Adapter::new(config, http)?)
            }
            #[cfg(feature = "ekuaibao")]
            VendorConfig::Ekuaibao(config) => {
                Adapter::Ekuaibao(vendors::ekuaibao::Adapter::new(config, http)?)
            }
        };
        Ok(Refresher { vendor, adapter })
    }

    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// Exchanges `grant` for fresh tokens. Every failure is a [`RefreshError`]; nothing here panics on what a
    /// vendor sends. Runs in a `refresh` tracing span (vendor, outcome, HTTP status, latency; never tokens).
    pub async fn refresh(&self, grant: &RefreshGrant) -> Result<TokenSet, RefreshError> {
        let span = tracing::info_span!(
            "refresh",
            vendor = %self.vendor(),
            outcome = tracing::field::Empty,
            http_status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.dispatch(grant).instrument(span.clone()).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        span.record("latency_ms", latency_ms);
        match &result {
            Ok(tokens) => {
                span.record("outcome", "ok");
                tracing::info!(parent: &span, latency_ms, rotated = tokens.rotated(), expires_at = %tokens.expires_at, "token refreshed");
            }
            Err(error) => {
                span.record("outcome", error.kind().as_str());
                if let Some(status) = error.http_status() {
                    span.record("http_status", status);
                }
                tracing::warn!(parent: &span, latency_ms, kind = %error.kind(), vendor_code = error.vendor_code(), "refresh failed");
            }
        }
        result
    }

    async fn dispatch(&self, grant: &RefreshGrant) -> Result<TokenSet, RefreshError> {
        match &self.adapter {
            #[cfg(feature = "isolarcloud")]
            Adapter::ISolarCloud(adapter) => adapter.refresh(grant).await,
            #[cfg(feature = "sugon-ac")]
            Adapter::SugonAc(adapter) => adapter.refresh(grant).await,
            #[cfg(feature = "misa-cukcuk")]
            Adapter::MisaCukcuk(adapter) => adapter.refresh(grant).await,
            #[cfg(feature = "wechat-open")]
            Adapter::WechatOpen(adapter) => adapter.refresh(grant).await,
            #[cfg(feature = "ekuaibao")]
            Adapter::Ekuaibao(adapter) => adapter.refresh(grant).await,
        }
    }
}

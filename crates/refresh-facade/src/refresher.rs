//! The one entry point: a [`Refresher`] built from a [`VendorConfig`].
//!
//! An enum over vendor adapters rather than a trait object: the set of vendors is closed and known at compile
//! time (one cargo feature each), configuration picks one at run time, and a `match` makes every vendor handle
//! every concern with no boxing or dynamic dispatch. See ARCHITECTURE.md.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use tracing::Instrument;

use crate::clock::Clock;
use crate::config::{ConfigError, HttpOptions, VendorConfig};
use crate::error::{ErrorKind, RefreshError};
use crate::grant::{Grant, RefreshGrant};
use crate::token::TokenSet;
use crate::vendor::Vendor;
use crate::vendors;

/// Refreshes tokens at one vendor, as configured.
#[derive(Clone, Debug)]
pub struct Refresher {
    vendor: Vendor,
    adapter: Adapter,
    clock: Clock,
    call_timeout: Duration,
}

macro_rules! adapters {
    ([] $($(#[$doc:meta])* $variant:ident $name:literal $module:ident $config:ident $extras:ident,)*) => {
        /// The compiled vendors' adapters, one of which a refresher holds.
        #[derive(Clone, Debug)]
        enum Adapter {
            $(
                #[cfg(feature = $name)]
                $variant(vendors::$module::Adapter),
            )*
        }

        impl Adapter {
            fn new(config: VendorConfig, http: reqwest::Client) -> Result<Adapter, ConfigError> {
                Ok(match config {
                    $(
                        #[cfg(feature = $name)]
                        VendorConfig::$variant(config) => {
                            Adapter::$variant(vendors::$module::Adapter::new(config, http)?)
                        }
                    )*
                })
            }

            async fn refresh(
                &self,
                grant: &RefreshGrant,
                sent_at: DateTime<Utc>,
            ) -> Result<TokenSet, RefreshError> {
                match self {
                    $(
                        #[cfg(feature = $name)]
                        Adapter::$variant(adapter) => adapter.refresh(grant, sent_at).await,
                    )*
                }
            }

            async fn obtain(&self, grant: &Grant, sent_at: DateTime<Utc>) -> Result<TokenSet, RefreshError> {
                match self {
                    $(
                        #[cfg(feature = $name)]
                        Adapter::$variant(adapter) => adapter.obtain(grant, sent_at).await,
                    )*
                }
            }
        }
    };
}

for_each_vendor!(adapters);

impl Refresher {
    /// A refresher with its own HTTP client ([`HttpOptions::default`]).
    pub fn new(config: VendorConfig) -> Result<Self, ConfigError> {
        Self::with_http_options(config, &HttpOptions::default())
    }

    /// A refresher with its own HTTP client built from `options`, whose timeout is also its
    /// [`Refresher::call_timeout`].
    pub fn with_http_options(
        config: VendorConfig,
        options: &HttpOptions,
    ) -> Result<Self, ConfigError> {
        Ok(Self::with_http_client(config, options.build_client()?)?
            .with_call_timeout(options.timeout))
    }

    /// A refresher that uses `http` (build it with [`HttpOptions::build_client`] and share it between
    /// refreshers: connections are reused). Its [`Refresher::call_timeout`] is [`HttpOptions::DEFAULT_TIMEOUT`]
    /// unless [`Refresher::with_call_timeout`] says another: set it to the client's timeout.
    pub fn with_http_client(
        config: VendorConfig,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let vendor = config.vendor();
        let adapter = Adapter::new(config, http)?;
        Ok(Refresher {
            vendor,
            adapter,
            clock: Clock::system(),
            call_timeout: HttpOptions::DEFAULT_TIMEOUT,
        })
    }

    /// The longest one call of this refresher may take. A token manager gives up on a call after it (with
    /// [`RefreshError::timed_out`]), and sends none under a store lease that could lapse first.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// See [`Refresher::call_timeout`]: at least 1 ms.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The same refresher, reading "now" from `clock` (when requests are sent, how old a token is).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// Obtains first tokens with `grant` (a login): the answer is a [`TokenSet`] like a refresh's, with
    /// [`crate::Rotation::Issued`]. Store it, and refresh with [`RefreshGrant::from`] it. Errors are
    /// [`RefreshError`]s that say "login"; a grant of another vendor is [`ErrorKind::Unsupported`], and nothing
    /// is sent. Runs in a `login` tracing span.
    pub async fn obtain(&self, grant: &Grant) -> Result<TokenSet, RefreshError> {
        let span =
            tracing::info_span!("login", vendor = %self.vendor(), outcome = tracing::field::Empty);
        let result = async {
            if grant.vendor() != self.vendor {
                let detail = format!(
                    "the grant is for {}, the refresher for {}",
                    grant.vendor(),
                    self.vendor
                );
                return Err(RefreshError::new(
                    self.vendor,
                    ErrorKind::Unsupported,
                    detail,
                ));
            }
            self.with_vendor_clock(self.adapter.obtain(grant, self.clock.now()))
                .await
        }
        .instrument(span.clone())
        .await
        .map_err(RefreshError::during_login);
        match &result {
            Ok(_) => {
                span.record("outcome", "ok");
                tracing::info!(parent: &span, "tokens obtained");
            }
            Err(error) => {
                span.record("outcome", error.kind().as_str());
                tracing::warn!(parent: &span, kind = %error.kind(), vendor_code = error.vendor_code(), "login failed");
            }
        }
        result
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
        if grant.refresh_token.is_blank() {
            let detail = "the grant has no refresh token (a credential obtained again instead of refreshed, \
                          such as WeChat's component token, has none): nothing was sent";
            return Err(RefreshError::new(
                self.vendor,
                ErrorKind::InvalidRequest,
                detail,
            ));
        }
        let sent_at = self.clock.now();
        self.with_vendor_clock(self.adapter.refresh(grant, sent_at))
            .await
    }

    /// Runs a vendor call; its tokens say how far the vendor's clock (its answer's `Date`) was from ours.
    async fn with_vendor_clock(
        &self,
        call: impl Future<Output = Result<TokenSet, RefreshError>>,
    ) -> Result<TokenSet, RefreshError> {
        let (mut result, date) = crate::vendor_clock::observed(call).await;
        let answered_at = self.clock.now();
        if let Ok(tokens) = &mut result {
            tokens.vendor_clock_ahead = date.map(|date| date - answered_at);
        }
        result
    }
}

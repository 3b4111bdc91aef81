//! The credentials the emulators accept. Anything else is refused with the vendor's own error.

/// iSolarCloud app key (`appkey`).
pub const ISOLARCLOUD_APP_KEY: &str = "sandbox-app-key";
/// iSolarCloud app secret key (`x-access-key` header).
pub const ISOLARCLOUD_ACCESS_KEY: &str = "sandbox-access-key";
/// The redirect URI registered for the iSolarCloud app.
pub const ISOLARCLOUD_REDIRECT_URI: &str = "https://app.example/isolarcloud/callback";

/// Sugon AC user, password and organization (headers of the get-token call).
pub const SUGON_USER: &str = "sandbox-user";
pub const SUGON_PASSWORD: &str = "sandbox-password";
pub const SUGON_ORG_ID: &str = "sandbox-org";

/// The MISA CukCuk company (restaurant) code, which is also the OpenPlatform login's `Domain`.
pub const MISA_COMPANY_CODE: &str = "sandbox-company";
/// The MISA CukCuk OpenPlatform app (`AppID`, the public clients' value) and its secret key (signs each login).
pub const MISA_APP_ID: &str = "CUKCUKOpenPlatform";
pub const MISA_SECRET_KEY: &str = "sandbox-secret-key";

/// The WeChat third-party platform.
pub const WECHAT_COMPONENT_APPID: &str = "wx-sandbox-component";
pub const WECHAT_COMPONENT_APPSECRET: &str = "sandbox-component-secret";
pub const WECHAT_VERIFY_TICKET: &str = "ticket@@@sandbox";
/// The Official Account that authorized the platform.
pub const WECHAT_AUTHORIZER_APPID: &str = "wx-sandbox-authorizer";

/// Ekuaibao app key and secret (`appKey`, `appSecurity`).
pub const EKUAIBAO_APP_KEY: &str = "sandbox-app-key";
pub const EKUAIBAO_APP_SECURITY: &str = "sandbox-app-security";
/// The corporation id the tokens belong to.
pub const EKUAIBAO_CORPORATION_ID: &str = "sandboxcorp01";
/// The licence code the refreshes must carry.
pub const EKUAIBAO_POWER_CODE: &str = "219904";

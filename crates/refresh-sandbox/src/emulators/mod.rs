//! One emulator per vendor. Each answers in its vendor's documented format, written here from the vendor's
//! documentation (`serde_json::json!`), never from refresh-kit's generated types.

pub(crate) mod ekuaibao;
pub(crate) mod isolarcloud;
pub(crate) mod misa_cukcuk;
pub(crate) mod sugon_ac;
pub(crate) mod wechat_open;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use serde_json::Value;

use crate::{Emulator, Shared};

/// What every emulator issued (tokens, codes), each in its own ledger.
#[derive(Debug, Default)]
pub(crate) struct Ledgers {
    pub isolarcloud: isolarcloud::Ledger,
    pub sugon_ac: sugon_ac::Ledger,
    pub misa_cukcuk: misa_cukcuk::Ledger,
    pub wechat_open: wechat_open::Ledger,
    pub ekuaibao: ekuaibao::Ledger,
}

impl Ledgers {
    /// The tokens a refresh at `emulator` presents.
    pub(crate) fn refresh_tokens(&self, emulator: Emulator) -> &crate::tokens::Tokens {
        match emulator {
            Emulator::ISolarCloud => self.isolarcloud.refresh_tokens(),
            Emulator::SugonAc => self.sugon_ac.refresh_tokens(),
            Emulator::MisaCukcuk => self.misa_cukcuk.refresh_tokens(),
            Emulator::WechatOpen => self.wechat_open.refresh_tokens(),
            Emulator::Ekuaibao => self.ekuaibao.refresh_tokens(),
        }
    }

    pub(crate) fn refresh_tokens_mut(&mut self, emulator: Emulator) -> &mut crate::tokens::Tokens {
        match emulator {
            Emulator::ISolarCloud => &mut self.isolarcloud.refresh,
            Emulator::SugonAc => &mut self.sugon_ac.tokens,
            Emulator::MisaCukcuk => &mut self.misa_cukcuk.refresh,
            Emulator::WechatOpen => &mut self.wechat_open.refresh,
            Emulator::Ekuaibao => &mut self.ekuaibao.refresh,
        }
    }

    /// The tokens a caller presents to the vendor's APIs at `emulator`: access tokens (Sugon AC: its tokens;
    /// WeChat: the authorizers' and the platform's component tokens).
    pub(crate) fn access_tokens(&self, emulator: Emulator) -> Vec<&crate::tokens::Tokens> {
        match emulator {
            Emulator::ISolarCloud => vec![&self.isolarcloud.access],
            Emulator::SugonAc => vec![&self.sugon_ac.tokens],
            Emulator::MisaCukcuk => vec![&self.misa_cukcuk.access],
            Emulator::WechatOpen => vec![&self.wechat_open.access, &self.wechat_open.component],
            Emulator::Ekuaibao => vec![&self.ekuaibao.access],
        }
    }
}

pub(crate) fn router(emulator: Emulator, shared: Arc<Shared>) -> Router {
    let routes = match emulator {
        Emulator::ISolarCloud => isolarcloud::routes(),
        Emulator::SugonAc => sugon_ac::routes(),
        Emulator::MisaCukcuk => misa_cukcuk::routes(),
        Emulator::WechatOpen => wechat_open::routes(),
        Emulator::Ekuaibao => ekuaibao::routes(),
    };
    routes.with_state(shared)
}

/// A JSON answer with `status`.
pub(crate) fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The request body as JSON; `Value::Null` when it is not JSON (each emulator then refuses the missing fields).
pub(crate) fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// A non-empty string field of a JSON body.
pub(crate) fn field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name)?.as_str().filter(|s| !s.trim().is_empty())
}

/// A non-empty header value.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .filter(|s| !s.trim().is_empty())
}

pub(crate) fn seconds(seconds: i64) -> TimeDelta {
    TimeDelta::seconds(seconds)
}

/// A random token in the 8-4-4-4-12 form iSolarCloud's and MISA's samples show.
pub(crate) fn uuid_like() -> String {
    let hex = crate::tokens::random_hex();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

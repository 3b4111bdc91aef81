//! MISA CukCuk Graph API v2: `POST /Authen/v2/RefreshToken` with `{CompanyCode, RefreshToken}`; answers in the
//! `{Data, Success, ErrorMessage, ErrorType, Total}` envelope (`ErrorType` 1 null or empty parameter, 2 unknown
//! company code), and HTTP 401 for an expired or invalid token. `Expire_Date` has 7 fractional digits and the
//! +07:00 offset. Refresh tokens rotate.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, FixedOffset, Timelike, Utc};
use serde_json::json;

use super::{field, json, json_body, seconds, uuid_like};
use crate::accounts::MISA_COMPANY_CODE;
use crate::tokens::Tokens;
use crate::{Emulator, Shared};

/// The sandbox's lifetimes (the vendor documents none).
const ACCESS_LIFETIME_SECONDS: i64 = 8 * 3600;
const REFRESH_LIFETIME_SECONDS: i64 = 30 * 24 * 3600;

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) refresh: Tokens,
    /// The access tokens issued with them (no MISA endpoint here takes one; kept for the oracle).
    pub(crate) access: Tokens,
}

impl Ledger {
    /// What a refresh presents: its refresh tokens.
    pub(crate) fn refresh_tokens(&self) -> &Tokens {
        &self.refresh
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/Authen/v2/RefreshToken", post(refresh))
}

/// Stands in for the undocumented v2 login: tokens for `company_code`.
pub(crate) fn login(shared: &Shared, company_code: &str) -> crate::Login {
    let now = shared.clock.now();
    let access = uuid_like();
    let mut ledgers = shared.ledgers();
    let refresh = ledgers.misa_cukcuk.refresh.issue(
        "",
        now,
        Some(seconds(REFRESH_LIFETIME_SECONDS)),
        company_code,
    );
    let lifetime = Some(seconds(ACCESS_LIFETIME_SECONDS));
    ledgers
        .misa_cukcuk
        .access
        .insert(access.clone(), now, lifetime, company_code);
    crate::Login::new(access, refresh)
}

fn failure(error_type: i64, message: &str) -> Response {
    json(
        StatusCode::OK,
        json!({"Success": false, "ErrorMessage": message, "ErrorType": error_type, "Total": 0}),
    )
}

async fn refresh(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body = json_body(&body);
    let (Some(company), Some(old)) = (field(&body, "CompanyCode"), field(&body, "RefreshToken"))
    else {
        return failure(1, "CompanyCode and RefreshToken are required");
    };
    shared.record_refresh(Emulator::MisaCukcuk, old);
    if company != MISA_COMPANY_CODE {
        return failure(2, "CompanyCode does not exist");
    }
    let now = shared.clock.now();
    let refresh = {
        let mut ledgers = shared.ledgers();
        let tokens = &mut ledgers.misa_cukcuk.refresh;
        match tokens.check(old, now) {
            Ok(issued) if issued.subject == company => {}
            _ => return StatusCode::UNAUTHORIZED.into_response(),
        }
        tokens.spend(old);
        tokens.issue("", now, Some(seconds(REFRESH_LIFETIME_SECONDS)), company)
    };
    let access = uuid_like();
    let lifetime = Some(seconds(ACCESS_LIFETIME_SECONDS));
    shared
        .ledgers()
        .misa_cukcuk
        .access
        .insert(access.clone(), now, lifetime, company);
    let expires = dotnet_date(now + seconds(ACCESS_LIFETIME_SECONDS));
    json(
        StatusCode::OK,
        json!({
            "Data": {
                "AppID": "sandbox-app",
                "Access_Token": access,
                "Token_type": "Bearer",
                "Expire_Date": expires,
                "Branchs": [{
                    "BranchID": "b0519dfe-0bfc-4cc0-a3d1-b88e20ea55ab",
                    "BranchCode": "CN01",
                    "BranchName": "Sandbox Restaurant",
                    "Address": "1 Sandbox Street",
                    "Tel": "0240000000",
                    "Country": "VN",
                    "ProvinceOrCity": "Ha Noi",
                    "District": "Cau Giay",
                    "WardOrCommune": "Dich Vong",
                    "Street": "Sandbox Street",
                    "TaxCode": "0100000000",
                    "TimeZoneCode": "SE Asia Standard Time",
                    "PostalCode": "100000",
                }],
                "MainCurrency": "VND",
                "RequestTimeout": 30,
                "RefreshToken": refresh,
                "ListDictionarySeperate": ";",
                "IsNotExistBankAccountNumber": false,
            },
            "Success": true,
            "ErrorMessage": null,
            "ErrorType": 0,
            "Total": 1,
        }),
    )
}

/// .NET's round-trip format as the vendor sends it: 7 fractional digits and the +07:00 offset.
fn dotnet_date(at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&FixedOffset::east_opt(7 * 3600).expect("a valid offset"));
    let ticks = local.nanosecond() % 1_000_000_000 / 100;
    format!(
        "{}.{ticks:07}{}",
        local.format("%Y-%m-%dT%H:%M:%S"),
        local.format("%:z")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_seven_fractional_digits_and_the_vietnam_offset() {
        let at = DateTime::parse_from_rfc3339("2025-06-25T11:44:15.6186183Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(dotnet_date(at), "2025-06-25T18:44:15.6186183+07:00");
    }
}

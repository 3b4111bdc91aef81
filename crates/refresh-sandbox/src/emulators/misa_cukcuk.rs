//! MISA CukCuk OpenPlatform login: `POST /api/Account/Login` (the path matched in any case, as ASP.NET routes) with
//! JSON `{AppID, Domain, LoginTime, SignatureInfo}`, where `SignatureInfo` is the hex HMAC-SHA256 of
//! `{"AppID":…,"Domain":…,"LoginTime":…}` (compact JSON, that order) keyed by the app's secret key. `LoginTime` is
//! signed as sent and not otherwise checked (a public client's live test found any string accepted). Answers
//! `{Code, Data: {AccessToken, AppID, CompanyCode, Domain}, Success, Total}`, no refresh token and no expiry;
//! `ErrorType` 1 missing field, 2 unknown domain, 3 unknown AppID, 4 bad signature.
//!
//! MISA CukCuk Graph API v2: `POST /Authen/v2/RefreshToken` with `{CompanyCode, RefreshToken}`; answers in the
//! `{Data, Success, ErrorMessage, ErrorType, Total}` envelope (`ErrorType` 1 null or empty parameter, 2 unknown
//! company code), and HTTP 401 for an expired or invalid token. `Expire_Date` has 7 fractional digits and the
//! +07:00 offset. Refresh tokens rotate.
//!
//! The formats the page documents: a body in JSON (`application/json`, `text/json`, `text/html`), XML
//! (`application/xml`, `text/xml`: the `RefreshParam` DataContract) or a form (`application/x-www-form-urlencoded`).
//! The answer is XML when the `Accept` header asks for it, or, without one that names JSON or XML, when the body was
//! XML (ASP.NET Web API's negotiation); else JSON. In XML `ErrorType` is the enum's name: "None" is documented; the
//! v2 names of the failure codes are not, so their numbers are sent.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, FixedOffset, Timelike, Utc};
use hmac::{KeyInit, Mac};
use serde_json::json;

use super::{field, json, json_body, seconds, uuid_like};
use crate::accounts::{MISA_APP_ID, MISA_COMPANY_CODE, MISA_SECRET_KEY};
use crate::tokens::Tokens;
use crate::{Emulator, Shared};

/// The sandbox's lifetimes (the vendor documents none; a public client's notes say a login's token lasts a day).
const ACCESS_LIFETIME_SECONDS: i64 = 8 * 3600;
const LOGIN_ACCESS_LIFETIME_SECONDS: i64 = 24 * 3600;
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
    let mut routes = Router::new().route("/Authen/v2/RefreshToken", post(refresh));
    // ASP.NET matches routes in any case: the documentation and the public clients spell this one two ways.
    for path in ["/api/Account/Login", "/api/account/login"] {
        routes = routes.route(path, post(open_platform_login));
    }
    routes
}

/// The OpenPlatform login: checks the app, the domain and the signature, and issues an access token only.
async fn open_platform_login(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body = json_body(&body);
    let fields = ["AppID", "Domain", "LoginTime", "SignatureInfo"].map(|name| field(&body, name));
    let [
        Some(app_id),
        Some(domain),
        Some(login_time),
        Some(signature),
    ] = fields
    else {
        return open_platform_failure(1, "AppID, Domain, LoginTime and SignatureInfo are required");
    };
    if app_id != MISA_APP_ID {
        return open_platform_failure(3, "AppID does not exist");
    }
    if domain != MISA_COMPANY_CODE {
        return open_platform_failure(2, "Domain does not exist");
    }
    // The signed text, written out as the documentation's clients build it.
    let signed = json!({"AppID": app_id, "Domain": domain, "LoginTime": login_time});
    let signed = format!(
        r#"{{"AppID":{},"Domain":{},"LoginTime":{}}}"#,
        signed["AppID"], signed["Domain"], signed["LoginTime"]
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(MISA_SECRET_KEY.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(signed.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if !signature.eq_ignore_ascii_case(&expected) {
        return open_platform_failure(4, "SignatureInfo is invalid or has timed out");
    }
    let now = shared.clock.now();
    let access = uuid_like();
    shared.ledgers().misa_cukcuk.access.insert(
        access.clone(),
        now,
        Some(seconds(LOGIN_ACCESS_LIFETIME_SECONDS)),
        domain,
    );
    json(
        StatusCode::OK,
        json!({
            "Code": 200,
            "Data": {"AccessToken": access, "AppID": app_id, "CompanyCode": domain, "Domain": domain},
            "Success": true,
            "Total": 0,
        }),
    )
}

/// The OpenPlatform's ServiceResult for a refused call (HTTP 200, as documented).
fn open_platform_failure(error_type: i64, message: &str) -> Response {
    json(
        StatusCode::OK,
        json!({"Code": 200, "Success": false, "ErrorType": error_type, "ErrorMessage": message, "Total": 0}),
    )
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

/// A request's parameters, from whichever body format it was sent in.
#[derive(Default)]
struct RefreshParam {
    company_code: Option<String>,
    refresh_token: Option<String>,
}

/// The body format a request or an answer uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
    Form,
}

/// The format a media type names, if it is one of the documented ones.
fn format_of(media_type: &str) -> Option<Format> {
    let essence = media_type.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "text/json" | "text/html" => Some(Format::Json),
        "application/xml" | "text/xml" => Some(Format::Xml),
        "application/x-www-form-urlencoded" => Some(Format::Form),
        _ => None,
    }
}

impl RefreshParam {
    fn read(format: Format, body: &[u8]) -> RefreshParam {
        let mut param = RefreshParam::default();
        let mut set = |name: &str, value: String| {
            let value = Some(value).filter(|v| !v.trim().is_empty());
            match name {
                "CompanyCode" => param.company_code = value,
                "RefreshToken" => param.refresh_token = value,
                _ => {}
            }
        };
        match format {
            Format::Json => {
                let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                for name in ["CompanyCode", "RefreshToken"] {
                    if let Some(value) = body.get(name).and_then(|v| v.as_str()) {
                        set(name, value.to_owned());
                    }
                }
            }
            Format::Form => {
                for (name, value) in url::form_urlencoded::parse(body) {
                    set(&name, value.into_owned());
                }
            }
            Format::Xml => {
                // The DataContract's children of the root, by local name (namespaces carry typing only).
                let mut reader = quick_xml::Reader::from_reader(body);
                let mut open = None;
                let mut buffer = Vec::new();
                loop {
                    match reader.read_event_into(&mut buffer) {
                        Ok(quick_xml::events::Event::Start(start)) => {
                            open = Some(
                                String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                            );
                        }
                        Ok(quick_xml::events::Event::Text(text)) => {
                            if let (Some(name), Ok(text)) = (&open, text.decode()) {
                                set(name, text.trim().to_owned());
                            }
                        }
                        Ok(quick_xml::events::Event::End(_)) => open = None,
                        Ok(quick_xml::events::Event::Eof) | Err(_) => break,
                        Ok(_) => {}
                    }
                    buffer.clear();
                }
            }
        }
        param
    }
}

/// The answer's format: what `Accept` asks for, else the request's own format when it was XML, else JSON.
fn answer_format(headers: &HeaderMap, request: Format) -> Format {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let asked = accept
        .split(',')
        .filter_map(format_of)
        .find(|format| *format != Format::Form);
    match asked {
        Some(format) => format,
        None if request == Format::Xml => Format::Xml,
        None => Format::Json,
    }
}

/// The XML answer's root: the DataContract name of `GraphAPIResult<LoginV2Result>`, as the page's sample has it.
const XML_ROOT: &str = "GraphAPIResultOfLoginV2ResultHwd4PmMc";
const XML_NAMESPACES: &str = r#"xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/MISA.QLNH.BE.BO""#;

/// `value` (a JSON object) as DataContract XML elements: members in name order, as DataContract writes them; an
/// array's items as `item_name` elements; null as `i:nil`.
fn xml_elements(value: &serde_json::Value, item_name: &str) -> String {
    use serde_json::Value;
    let mut out = String::new();
    if let Value::Object(members) = value {
        let mut names: Vec<&String> = members.keys().collect();
        names.sort();
        for name in names {
            let member = &members[name];
            match member {
                Value::Null => out.push_str(&format!("<{name} i:nil=\"true\"/>")),
                Value::Array(items) => {
                    out.push_str(&format!("<{name}>"));
                    for item in items {
                        out.push_str(&format!(
                            "<{item_name}>{}</{item_name}>",
                            xml_elements(item, item_name)
                        ));
                    }
                    out.push_str(&format!("</{name}>"));
                }
                Value::Object(_) => out.push_str(&format!(
                    "<{name}>{}</{name}>",
                    xml_elements(member, item_name)
                )),
                Value::String(text) => out.push_str(&format!(
                    "<{name}>{}</{name}>",
                    quick_xml::escape::escape(text.as_str())
                )),
                other => out.push_str(&format!("<{name}>{other}</{name}>")),
            }
        }
    }
    out
}

/// `envelope` (the JSON answer) in `format`.
fn answer(format: Format, envelope: serde_json::Value) -> Response {
    if format != Format::Xml {
        return json(StatusCode::OK, envelope);
    }
    let mut envelope = envelope;
    if let Some(members) = envelope.as_object_mut() {
        members.insert("ActionType".into(), json!("Login"));
        // DataContract writes every member; an absent one is nil.
        members.entry("Data").or_insert(serde_json::Value::Null);
        // The enum's name in XML; only "None" is documented.
        if members.get("ErrorType") == Some(&json!(0)) {
            members.insert("ErrorType".into(), json!("None"));
        }
    }
    let body = format!(
        "<{XML_ROOT} {XML_NAMESPACES}>{}</{XML_ROOT}>",
        xml_elements(&envelope, "BranchResult")
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn failure(format: Format, error_type: i64, message: &str) -> Response {
    answer(
        format,
        json!({"Success": false, "ErrorMessage": message, "ErrorType": error_type, "Total": 0}),
    )
}

async fn refresh(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(format_of)
        .unwrap_or(Format::Json);
    let format = answer_format(&headers, request);
    let param = RefreshParam::read(request, &body);
    let (Some(company), Some(old)) = (
        param.company_code.as_deref(),
        param.refresh_token.as_deref(),
    ) else {
        return failure(format, 1, "CompanyCode and RefreshToken are required");
    };
    shared.record_refresh(Emulator::MisaCukcuk, old);
    if company != MISA_COMPANY_CODE {
        return failure(format, 2, "CompanyCode does not exist");
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
    answer(
        format,
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

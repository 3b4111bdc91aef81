//! No secret ever printed: refresh with canary tokens at every vendor (successes and failures) while every
//! tracing event and span (and every `log` record) at TRACE goes into a buffer, then format every `TokenSet`
//! and `RefreshError` with `{}`, `{:?}` and `{:#?}` into the same buffer. The canary must appear zero times.

use std::io::Write;
use std::sync::{Arc, Mutex};

use refresh_facade::{
    EkuaibaoConfig, HttpOptions, ISolarCloudConfig, MisaCukcukConfig, RefreshGrant, Refresher,
    SugonAcConfig, Vendor, VendorConfig, WechatOpenConfig,
};
use refresh_kit_tests::{RawAnswer, serve_raw};
use serde_json::{Value, json};

const CANARY: &str = "CANARY7d1e0c9bRefreshKit";

/// A JWT whose signature is the canary (Sugon AC tokens are JWTs; their claims are readable, not secret).
fn canary_jwt(suffix: &str) -> String {
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"user":"u","expireTime":"1900000000000"}"#);
    format!("eyJhbGciOiJIUzI1NiJ9.{payload}.{CANARY}{suffix}")
}

fn config(vendor: Vendor, base: &str) -> VendorConfig {
    let secret = format!("{CANARY}-config-secret");
    match vendor {
        Vendor::ISolarCloud => {
            VendorConfig::ISolarCloud(ISolarCloudConfig::new("app", secret).with_base_url(base))
        }
        Vendor::SugonAc => VendorConfig::SugonAc(SugonAcConfig::new().with_base_url(base)),
        Vendor::MisaCukcuk => {
            VendorConfig::MisaCukcuk(MisaCukcukConfig::new("company").with_base_url(base))
        }
        Vendor::WechatOpen => {
            VendorConfig::WechatOpen(WechatOpenConfig::new("wx-c", "wx-a").with_base_url(base))
        }
        Vendor::Ekuaibao => VendorConfig::Ekuaibao(
            EkuaibaoConfig::new()
                .with_validity_days(3)
                .with_base_url(base),
        ),
        other => unreachable!("{other}"),
    }
}

fn grant(vendor: Vendor) -> RefreshGrant {
    let refresh = if vendor == Vendor::SugonAc {
        canary_jwt("-old")
    } else {
        format!("{CANARY}-old-refresh")
    };
    RefreshGrant::new(refresh)
        .with_access_token(format!("{CANARY}-old-access"))
        .with_component_access_token(format!("{CANARY}-config-secret"))
}

/// A success carrying new canary tokens, in the vendor's format.
fn success(vendor: Vendor) -> Value {
    let (access, refresh) = (
        format!("{CANARY}-new-access"),
        format!("{CANARY}-new-refresh"),
    );
    match vendor {
        Vendor::ISolarCloud => {
            json!({"result_code": "1", "result_msg": "success", "result_data": {"code": "1", "access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": 172799}})
        }
        Vendor::SugonAc => json!({"code": "0", "msg": "success", "data": canary_jwt("-new")}),
        Vendor::MisaCukcuk => {
            json!({"Success": true, "ErrorType": 0, "Total": 1, "Data": {"Access_Token": access, "RefreshToken": refresh, "Expire_Date": "2026-12-01T10:00:00.1234567+07:00"}})
        }
        Vendor::WechatOpen => {
            json!({"authorizer_access_token": access, "expires_in": 7200, "authorizer_refresh_token": refresh})
        }
        Vendor::Ekuaibao => {
            json!({"value": {"accessToken": access, "refreshToken": refresh, "expireTime": 1_900_000_000_000_i64, "corporationId": "c"}})
        }
        other => unreachable!("{other}"),
    }
}

/// Failures whose messages echo the request's tokens, as some vendors' do.
fn failures(vendor: Vendor) -> Vec<(&'static str, Value)> {
    // Exactly the secrets this vendor's request carried: the grant's tokens, and the configured secret where the
    // vendor has one.
    let grant = grant(vendor);
    let mut echo = format!(
        "refused {} {}",
        grant.refresh_token.expose_secret(),
        grant.access_token.as_ref().unwrap().expose_secret()
    );
    if matches!(vendor, Vendor::ISolarCloud | Vendor::WechatOpen) {
        echo.push_str(&format!(" {CANARY}-config-secret"));
    }
    let failure = match vendor {
        Vendor::ISolarCloud => json!({"result_code": "E912", "result_msg": echo}),
        Vendor::SugonAc => {
            json!({"code": "10004", "msg": format!("{echo} {}", canary_jwt("-old"))})
        }
        Vendor::MisaCukcuk => json!({"Success": false, "ErrorType": 4, "ErrorMessage": echo}),
        Vendor::WechatOpen => json!({"errcode": 61023, "errmsg": echo}),
        Vendor::Ekuaibao => json!({"errorCode": 403, "errorMessage": echo}),
        other => unreachable!("{other}"),
    };
    // A new token where a number belongs: the decode error must not quote it.
    let wrong_type = json!({"result_data": format!("{CANARY}-new-access"), "code": [format!("{CANARY}-x")], "Success": format!("{CANARY}"), "errcode": format!("{CANARY}"), "value": format!("{CANARY}")});
    vec![
        ("documented failure echoing secrets", failure),
        ("wrong types carrying a token", wrong_type),
    ]
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_appears_in_any_output() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber of this test binary");

    // The capture works: an event with a marker lands in the buffer.
    tracing::trace!(marker = "capture-probe-7c1", "probe");
    let http = HttpOptions::default().build_client().unwrap();
    let mut printed = Buffer::default();
    let mut refreshes = 0;
    for vendor in Vendor::ALL {
        let mut answers = vec![("success", success(vendor))];
        answers.extend(failures(vendor));
        for (name, answer) in answers {
            let base = serve_raw(RawAnswer::http(
                "200 OK",
                &[("content-type", "application/json")],
                answer.to_string().as_bytes(),
            ))
            .await;
            let refresher =
                Refresher::with_http_client(config(vendor, &base), http.clone()).unwrap();
            let outcome = refresher.refresh(&grant(vendor)).await;
            refreshes += 1;
            match &outcome {
                Ok(tokens) => {
                    assert_eq!(name, "success", "{vendor}");
                    assert!(
                        tokens.access_token.expose_secret().contains(CANARY),
                        "{vendor}: the canary really is the token"
                    );
                    write!(
                        printed,
                        "{tokens:?}\n{tokens:#?}\n{:?}\n{}\n",
                        tokens.access_token, tokens.refresh_token
                    )
                    .unwrap();
                }
                Err(error) => {
                    assert_ne!(name, "success", "{vendor}: {error}");
                    write!(printed, "{error}\n{error:?}\n{error:#?}\n").unwrap();
                    let mut source = std::error::Error::source(error);
                    while let Some(inner) = source {
                        write!(printed, "{inner}\n{inner:?}\n").unwrap();
                        source = inner.source();
                    }
                }
            }
            write!(printed, "{refresher:?}\n{:?}\n", grant(vendor)).unwrap();
        }
    }
    assert_eq!(refreshes, 15);

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let printed = String::from_utf8(printed.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("capture-probe-7c1"), "the capture works");
    assert!(
        logs.contains("refresh failed") && logs.contains("token refreshed"),
        "the refreshes were traced"
    );
    assert_eq!(
        logs.matches(CANARY).count(),
        0,
        "a secret in the tracing output:\n{logs}"
    );
    assert_eq!(
        printed.matches(CANARY).count(),
        0,
        "a secret in Display/Debug output:\n{printed}"
    );
}

use refresh_misa_cukcuk::operations::{ALL, LOGIN, REFRESH_TOKEN};
use refresh_misa_cukcuk::types::{GraphApiResultOfLoginV2Result, ServiceResultOfLoginResult};
use refresh_sandbox::{Emulator, accounts};
use serde_json::{Value, json};

use crate::case::Case;
use crate::conformance::{check, decode_as, start};

const ERROR_TYPE: &str = "/ErrorType";

fn refresh(company: &str, token: &str) -> Value {
    json!({"CompanyCode": company, "RefreshToken": token})
}

#[tokio::test]
async fn misa_cukcuk_answers_conform_to_the_spec() {
    let (sandbox, base, spec) = start(Emulator::MisaCukcuk).await;
    let token = sandbox.login(Emulator::MisaCukcuk).refresh_token;
    let company = accounts::MISA_COMPANY_CODE;
    let answers = vec![
        Case::new(&REFRESH_TOKEN, "success")
            .json(refresh(company, &token))
            .answers_code(ERROR_TYPE, 0)
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "rotated away")
            .json(refresh(company, &token))
            .answers_status(401)
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "unknown company")
            .json(refresh("nope", &token))
            .answers_code(ERROR_TYPE, 2)
            .send(&base)
            .await,
        Case::new(&REFRESH_TOKEN, "empty parameters")
            .json(json!({}))
            .answers_code(ERROR_TYPE, 1)
            .send(&base)
            .await,
    ];
    let expire = answers[0].text("/Data/Expire_Date");
    assert!(
        expire.ends_with("+07:00")
            && expire.split('.').nth(1).unwrap().len() == "6186183+07:00".len(),
        "{expire}"
    );
    // The sandbox's access tokens last 8 hours from its clock's now.
    let lifetime = chrono::DateTime::parse_from_rfc3339(&expire)
        .unwrap()
        .with_timezone(&chrono::Utc)
        - sandbox.clock().now();
    assert!(
        (lifetime - chrono::TimeDelta::hours(8)).abs() < chrono::TimeDelta::minutes(1),
        "{lifetime:?}"
    );
    check(&spec, ALL, &answers, |_, body| {
        decode_as::<GraphApiResultOfLoginV2Result>(body)
    });
}

/// The OpenPlatform login: the spec's own signed sample is accepted (its signature was computed apart from both
/// the facade and the emulator), in either spelling of the path; a changed field breaks the signature.
#[tokio::test]
async fn misa_cukcuk_login_answers_conform_to_the_spec() {
    let (sandbox, base, spec) = start(Emulator::MisaCukcuk).await;
    let documented = spec.request_examples(&LOGIN)[0].value.clone();
    let with = |name: &str, value: &str| {
        let mut body = documented.clone();
        body[name] = json!(value);
        body
    };
    let answers = vec![
        Case::new(&LOGIN, "the documented signed request")
            .json(documented.clone())
            .answers_code("/Success", true)
            .send(&base)
            .await,
        Case::new(&LOGIN, "a later LoginTime than the one signed")
            .json(with("LoginTime", "2025-06-25T11:44:16Z"))
            .answers_code(ERROR_TYPE, 4)
            .send(&base)
            .await,
        Case::new(&LOGIN, "unknown app")
            .json(with("AppID", "another-app"))
            .answers_code(ERROR_TYPE, 3)
            .send(&base)
            .await,
        Case::new(&LOGIN, "unknown domain")
            .json(with("Domain", "nope"))
            .answers_code(ERROR_TYPE, 2)
            .send(&base)
            .await,
        Case::new(&LOGIN, "no signature")
            .json(json!({"AppID": accounts::MISA_APP_ID, "Domain": accounts::MISA_COMPANY_CODE}))
            .answers_code(ERROR_TYPE, 1)
            .send(&base)
            .await,
    ];
    let token = answers[0].text("/Data/AccessToken");
    assert_eq!(
        sandbox.access_token_state(Emulator::MisaCukcuk, &token),
        refresh_sandbox::AccessTokenState::Live
    );
    assert_eq!(
        answers[0].text("/Data/CompanyCode"),
        accounts::MISA_COMPANY_CODE
    );
    check(&spec, ALL, &answers, |_, body| {
        decode_as::<ServiceResultOfLoginResult>(body)
    });

    // ASP.NET routes match in any case; the Go client sends the lowercase path.
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/api/account/login"))
        .json(&documented)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["Success"], true, "{answer}");
}

/// POSTs `body` as `content_type` (with `accept`, if any) to the refresh action; the status, content type and body.
async fn post(
    base: &str,
    content_type: &str,
    accept: Option<&str>,
    body: String,
) -> (u16, String, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{}", REFRESH_TOKEN.path))
        .header("content-type", content_type)
        .body(body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// The names of an XML answer's elements, as a tree of JSON object keys (values dropped), for comparing shapes.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(name, member)| (name.clone(), shape(member)))
                .collect(),
        ),
        Value::Array(items) => items.first().map_or(Value::Null, shape),
        _ => Value::Null,
    }
}

/// The page's own XML request sample, with the sandbox's company and a live token in place of its sample strings,
/// is refreshed, and answered in XML (the request's format, with no `Accept`) of the page's answer sample's shape.
/// `Accept` chooses the answer's format; a form body is read too; a failure in XML says so in XML.
#[tokio::test]
async fn misa_cukcuk_reads_and_answers_the_documented_xml_and_form_formats() {
    use refresh_kit_tests::xml::to_json;
    let (sandbox, base, spec) = start(Emulator::MisaCukcuk).await;
    let company = accounts::MISA_COMPANY_CODE;
    let sample = spec
        .request_xml_example(&REFRESH_TOKEN)
        .expect("the page's XML request sample");
    let documented = to_json(spec.response_xml_example(&REFRESH_TOKEN, 200).unwrap()).unwrap();

    let token = sandbox.login(Emulator::MisaCukcuk).refresh_token;
    let xml = sample
        .replace("sample string 1", company)
        .replace("sample string 2", &token);
    let (status, content_type, body) = post(&base, "application/xml", None, xml).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/xml"),
        "{content_type}"
    );
    let answer = to_json(&body).unwrap();
    assert_eq!(shape(&answer), shape(&documented), "{body}");
    let root = answer.as_object().unwrap().values().next().unwrap();
    assert_eq!(root["Success"], "true");
    assert_eq!(root["ErrorType"], "None");
    let rotated = root["Data"]["RefreshToken"].as_str().unwrap().to_owned();
    assert!(!rotated.is_empty() && rotated != token);

    // JSON asked for, from an XML body; then the rotated token in a form, answered in JSON.
    let xml = sample
        .replace("sample string 1", company)
        .replace("sample string 2", &rotated);
    let (status, content_type, body) = post(&base, "text/xml", Some("application/json"), xml).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let rotated: Value = serde_json::from_str(&body).unwrap();
    let rotated = rotated["Data"]["RefreshToken"].as_str().unwrap().to_owned();
    let form = format!("CompanyCode={company}&RefreshToken={rotated}");
    let (status, _, body) = post(&base, "application/x-www-form-urlencoded", None, form).await;
    assert_eq!(status, 200, "{body}");
    let answered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answered["Success"], true, "{body}");

    // A failure asked for in XML is XML.
    let (status, content_type, body) = post(
        &base,
        "application/json",
        Some("text/xml"),
        refresh("nope", "x").to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/xml"),
        "{content_type}"
    );
    let failed = to_json(&body).unwrap();
    let root = failed.as_object().unwrap().values().next().unwrap();
    assert_eq!(
        (root["Success"].as_str(), root["ErrorType"].as_str()),
        (Some("false"), Some("2"))
    );
}

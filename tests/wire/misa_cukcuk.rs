use refresh_kit_tests::{
    Spec, assert_request, capture_request, check_response_examples, snapshot_settings, xml,
};
use refresh_misa_cukcuk::Client;
use refresh_misa_cukcuk::operations::{LOGIN, REFRESH_TOKEN};
use refresh_misa_cukcuk::types::{LoginParam, RefreshParam};
use serde_json::Value;

fn spec() -> Spec {
    Spec::load("misa-cukcuk")
}

#[test]
fn every_operation_is_covered() {
    crate::assert_covers_every_operation(&spec(), &[&LOGIN, &REFRESH_TOKEN]);
}

#[tokio::test]
async fn login_request_is_the_documented_json_body() {
    let spec = spec();
    for example in spec.request_examples(&LOGIN) {
        let body: LoginParam = serde_json::from_value(example.value.clone()).unwrap();
        let captured = capture_request(&LOGIN, &spec.success_answer(&LOGIN), |base| async move {
            Client::new(&base).login().body(body).send().await
        })
        .await;
        assert_request(&spec, &LOGIN, Some(&example), &captured);
        assert_eq!(captured.headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn login_responses_decode_without_loss() {
    let spec = spec();
    check_response_examples(&spec, &LOGIN, |base| async move {
        let body = LoginParam {
            app_id: "a".into(),
            domain: "d".into(),
            login_time: "t".into(),
            signature_info: "s".into(),
        };
        Client::new(&base).login().body(body).send().await
    })
    .await;
}

#[tokio::test]
async fn refresh_token_request_is_the_documented_json_body() {
    let spec = spec();
    for example in spec.request_examples(&REFRESH_TOKEN) {
        let body: RefreshParam = serde_json::from_value(example.value.clone()).unwrap();
        let captured = capture_request(
            &REFRESH_TOKEN,
            &spec.success_answer(&REFRESH_TOKEN),
            |base| async move { Client::new(&base).refresh_token().body(body).send().await },
        )
        .await;
        assert_request(&spec, &REFRESH_TOKEN, Some(&example), &captured);
        // The server negotiates JSON or XML: the client must ask for JSON.
        assert_eq!(captured.headers["accept"], "application/json");
        assert_eq!(captured.headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn refresh_token_responses_decode_without_loss() {
    let spec = spec();
    check_response_examples(&spec, &REFRESH_TOKEN, |base| async move {
        let body = RefreshParam {
            company_code: "c".into(),
            refresh_token: "r".into(),
        };
        Client::new(&base).refresh_token().body(body).send().await
    })
    .await;
}

#[test]
fn xml_request_sample_carries_the_json_sample_values() {
    let spec = spec();
    let parsed = xml::to_json(spec.request_xml_example(&REFRESH_TOKEN).unwrap()).unwrap();
    let json = &spec.request_examples(&REFRESH_TOKEN)[0].value;
    assert_eq!(&parsed["RefreshParam"], json);
}

#[test]
fn xml_response_sample_carries_the_json_sample_values() {
    let spec = spec();
    let parsed = xml::to_json(spec.response_xml_example(&REFRESH_TOKEN, 200).unwrap()).unwrap();
    snapshot_settings("misa-cukcuk refresh_token HTTP 200: the XML sample, parsed with quick-xml")
        .bind(|| {
            insta::assert_yaml_snapshot!("misa-cukcuk__refresh_token__response__200__xml", parsed)
        });
    let mut from_xml = parsed["GraphAPIResultOfLoginV2ResultHwd4PmMc"].clone();

    // ErrorType is a .NET enum: its member None is 0, which JSON writes as the number and XML as the name.
    assert_eq!(from_xml["ErrorType"], "None");
    from_xml["ErrorType"] = Value::String("0".into());
    // The XML sample alone names the action; the JSON samples have no such member.
    assert_eq!(
        from_xml.as_object_mut().unwrap().remove("ActionType"),
        Some(Value::String("Login".into()))
    );

    let examples = spec.response_examples(&REFRESH_TOKEN);
    let sample = |name: &str| {
        examples
            .iter()
            .find(|(_, e)| e.name == name)
            .unwrap()
            .1
            .value
            .clone()
    };
    // The help page renders every format at its own instant: the XML and text/html samples share Expire_Date
    // (6 fractional digits); the application/json one was rendered 0.29 ms later (7 digits).
    assert_same_values("Data", &sample("success_text_html"), &from_xml);
    let json = sample("success");
    let (json_date, xml_date) = (
        json["Data"]["Expire_Date"].as_str().unwrap(),
        from_xml["Data"]["Expire_Date"].as_str().unwrap(),
    );
    assert_eq!(
        (json_date, xml_date),
        (
            "2025-06-25T18:44:15.6186183+07:00",
            "2025-06-25T18:44:15.618329+07:00"
        )
    );
    let mut json_without_date = json.clone();
    json_without_date["Data"]["Expire_Date"] = from_xml["Data"]["Expire_Date"].clone();
    assert_same_values("Data", &json_without_date, &from_xml);
}

/// Every member of the JSON sample appears in the XML with the same value, and the XML has no other member.
/// XML carries text only, so scalars compare as text; a DataContract collection wraps its items in one
/// element per item (`<Branchs><BranchResult>…`).
fn assert_same_values(at: &str, json: &Value, xml: &Value) {
    match (json, xml) {
        (Value::Object(json), Value::Object(xml)) => {
            let (mut json_keys, mut xml_keys): (Vec<_>, Vec<_>) =
                (json.keys().collect(), xml.keys().collect());
            json_keys.sort();
            xml_keys.sort();
            assert_eq!(json_keys, xml_keys, "{at}: members differ");
            for (key, value) in json {
                assert_same_values(&format!("{at}.{key}"), value, &xml[key]);
            }
        }
        (Value::Array(items), Value::Object(wrapper)) if wrapper.len() == 1 => {
            let wrapped = wrapper.values().next().unwrap();
            let wrapped = wrapped
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![wrapped.clone()]);
            assert_eq!(items.len(), wrapped.len(), "{at}: item count");
            for (index, (item, wrapped)) in items.iter().zip(&wrapped).enumerate() {
                assert_same_values(&format!("{at}[{index}]"), item, wrapped);
            }
        }
        (Value::String(json), Value::String(xml)) => assert_eq!(json, xml, "{at}"),
        (Value::Number(json), Value::String(xml)) => assert_eq!(&json.to_string(), xml, "{at}"),
        (Value::Bool(json), Value::String(xml)) => assert_eq!(&json.to_string(), xml, "{at}"),
        (json, xml) => panic!("{at}: JSON {json} vs XML {xml}"),
    }
}

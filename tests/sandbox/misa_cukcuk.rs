use refresh_misa_cukcuk::operations::{ALL, REFRESH_TOKEN};
use refresh_misa_cukcuk::types::GraphApiResultOfLoginV2Result;
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
    check(&spec, ALL, &answers, |_, body| {
        decode_as::<GraphApiResultOfLoginV2Result>(body)
    });
}

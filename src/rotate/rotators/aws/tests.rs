use super::*;

fn answer(status: u16, body: &str) -> http::Response {
    http::Response {
        status,
        headers: Default::default(),
        body: body.as_bytes().to_vec(),
    }
}

const CREATED: &str = "<CreateAccessKeyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><CreateAccessKeyResult><AccessKey><UserName>ci</UserName><AccessKeyId>AKIAIOSFODNN7EXAMPLE</AccessKeyId><Status>Active</Status><SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey><CreateDate>2026-12-05T08:00:00Z</CreateDate></AccessKey></CreateAccessKeyResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></CreateAccessKeyResponse>";

#[test]
fn a_created_key_gives_its_id_and_secret() {
    let p = parse_created(&answer(200, CREATED)).unwrap();
    assert_eq!(p.key_id.as_deref(), Some("AKIAIOSFODNN7EXAMPLE"));
    assert_eq!(
        p.value.as_deref(),
        Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY")
    );
    assert!(!format!("{p:?}").contains("wJalr"));
}

#[test]
fn garbage_and_refusals_are_errors_without_the_body() {
    for body in ["", "not xml", "<Other/>", "<CreateAccessKeyResponse/>"] {
        assert!(parse_created(&answer(200, body)).is_err(), "{body}");
    }
    let limit = "<ErrorResponse><Error><Type>Sender</Type><Code>LimitExceeded</Code><Message>Cannot exceed quota for AccessKeysPerUser: 2</Message></Error></ErrorResponse>";
    let e = parse_created(&answer(409, limit)).unwrap_err();
    assert!(e.contains("LimitExceeded") && !e.contains("quota"), "{e}");
    let weird = "<ErrorResponse><Error><Code>Secret-ish-Code</Code></Error></ErrorResponse>";
    let e = parse_created(&answer(400, weird)).unwrap_err();
    assert!(!e.contains("Secret-ish"), "{e}");
}

#[test]
fn the_key_list_is_counted() {
    let two = "<ListAccessKeysResponse><ListAccessKeysResult><UserName>ci</UserName><AccessKeyMetadata><member><AccessKeyId>AKIA0000000000000001</AccessKeyId><Status>Active</Status></member><member><AccessKeyId>AKIA0000000000000002</AccessKeyId><Status>Inactive</Status></member></AccessKeyMetadata><IsTruncated>false</IsTruncated></ListAccessKeysResult></ListAccessKeysResponse>";
    assert_eq!(parse_key_list(&answer(200, two)).unwrap().len(), 2);
    assert!(parse_key_list(&answer(200, "<x/>")).is_err());
    let denied = "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>";
    let e = parse_key_list(&answer(403, denied)).unwrap_err();
    assert!(e.contains("iam:ListAccessKeys"), "{e}");
}

#[test]
fn a_delete_of_a_key_already_gone_is_done() {
    let gone = "<ErrorResponse><Error><Code>NoSuchEntity</Code></Error></ErrorResponse>";
    assert!(check_empty(&answer(404, gone), "DeleteAccessKey", true).is_ok());
    assert!(check_empty(&answer(404, gone), "UpdateAccessKey", false).is_err());
    assert!(check_empty(&answer(500, ""), "DeleteAccessKey", true).is_err());
}

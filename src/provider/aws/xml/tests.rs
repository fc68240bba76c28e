use super::*;

#[test]
fn reads_a_query_protocol_answer() {
    let doc = parse(
        br#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:user/Alice</Arn>
    <UserId>AIDAEXAMPLE</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#,
    )
    .unwrap();
    assert_eq!(doc.name, "GetCallerIdentityResponse");
    assert_eq!(
        doc.text_at(&["GetCallerIdentityResult", "Arn"]),
        Some("arn:aws:iam::123456789012:user/Alice")
    );
    assert_eq!(
        doc.text_at(&["ResponseMetadata", "RequestId"]),
        Some("01234567-89ab")
    );
    assert_eq!(doc.text_at(&["GetCallerIdentityResult", "Nope"]), None);
}

#[test]
fn entities_cdata_prefixes_attributes_and_empty_elements() {
    let doc = parse(
        br#"<a:Root xmlns:a="x" b='1>2'><a:Msg>&lt;x&gt; &amp; &quot;&apos; &#65;&#x42;</a:Msg><Data><![CDATA[<raw & text>]]></Data><Empty/><Also attr="v" /></a:Root>"#,
    )
    .unwrap();
    assert_eq!(doc.name, "Root");
    assert_eq!(doc.text_at(&["Msg"]), Some("<x> & \"' AB"));
    assert_eq!(doc.text_at(&["Data"]), Some("<raw & text>"));
    assert!(doc.child("Empty").is_some());
    assert_eq!(doc.text_at(&["Empty"]), None);
    assert!(doc.child("Also").is_some());
}

#[test]
fn repeated_children() {
    let doc = parse(b"<L><member><Id>1</Id></member><member><Id>2</Id></member></L>").unwrap();
    let ids: Vec<&str> = doc
        .children_named("member")
        .filter_map(|m| m.text_at(&["Id"]))
        .collect();
    assert_eq!(ids, ["1", "2"]);
}

#[test]
fn refuses_what_aws_never_sends() {
    for (body, why) in [
        (
            &br#"<!DOCTYPE r [<!ENTITY e "boom">]><r>&e;</r>"#[..],
            "DOCTYPE",
        ),
        (b"<r>&e;</r>", "entity"),
        (b"<r>&#0;</r>", "character reference"),
        (b"<r>&#xD800;</r>", "character reference"),
        (b"<r>&amp</r>", "unterminated entity"),
        (b"<r><a></r>", "does not match"),
        (b"<r>", "ends inside"),
        (b"</r>", "without a start tag"),
        (b"<r/><s/>", "after the root"),
        (b"text<r/>", "outside the root"),
        (b"<r/>text", "outside the root"),
        (b"", "no XML element"),
        (b"   ", "no XML element"),
        (b"{\"json\": true}", "outside the root"),
        (b"<1r/>", "valid name"),
        (b"<r a=1/>", "without quotes"),
        (b"<r a=\"1/>", "unterminated attribute"),
        (b"<r", "unterminated start tag"),
        (b"<r><!-- x </r>", "unterminated comment"),
        (b"<r><![CDATA[ x </r>", "unterminated CDATA"),
        (b"<?xml ", "unterminated processing"),
        (b"<r>\xff</r>", "UTF-8"),
    ] {
        let err = parse(body).expect_err(why);
        assert!(
            err.contains(why),
            "{:?}: {err}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn depth_and_size_are_bounded() {
    let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
    assert!(parse(deep.as_bytes()).unwrap_err().contains("deeper"));
    let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
    assert!(parse(ok.as_bytes()).is_ok());
    let wide = format!("<r>{}</r>", "<m/>".repeat(MAX_ELEMENTS));
    assert!(
        parse(wide.as_bytes())
            .unwrap_err()
            .contains("more elements")
    );
}

#[test]
fn a_byte_order_mark_is_read_past() {
    let doc = parse("\u{feff}<r><x>1</x></r>".as_bytes()).unwrap();
    assert_eq!(doc.text_at(&["x"]), Some("1"));
}

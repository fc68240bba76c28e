//! IAM's answers about a long-term access key: its creation date and status
//! (`ListAccessKeys`, paged with `Marker`) and its last use (`GetAccessKeyLastUsed`). Both
//! are signed with the key itself, so they need no other credential, only a policy on the
//! key's user that allows them. IAM never changes the verdict STS gave: a refusal or a bad
//! answer leaves the age or last use undisclosed and says why in a flag. The readers are
//! pure; [`read`] makes the calls.

use jiff::Timestamp;

use super::xml::{self, Element};
use super::{Endpoint, Keys, error_of, safe_code, signed_post};
use crate::model::TokenFacts;
use crate::provider::http;

/// The IAM API version the probe speaks.
pub const IAM_VERSION: &str = "2010-05-08";

/// `ListAccessKeys` pages followed at most. A user has at most two keys, which one page
/// holds; the bound only stops a server that keeps answering "truncated".
pub const MAX_PAGES: usize = 10;

/// The IAM endpoint of a region's partition and the region IAM's signatures name there.
pub fn endpoint(region: &str) -> (&'static str, &'static str) {
    if region.starts_with("cn-") {
        ("https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1")
    } else if region.starts_with("us-gov-") {
        ("https://iam.us-gov.amazonaws.com", "us-gov-west-1")
    } else {
        ("https://iam.amazonaws.com", "us-east-1")
    }
}

/// Asks IAM about the key and adds what it says to `facts` (or a flag saying why not).
pub async fn read(
    client: &http::Client,
    endpoint: &Endpoint,
    keys: &Keys<'_>,
    now: Timestamp,
    facts: &mut TokenFacts,
) {
    let mut marker: Option<String> = None;
    for page in 1..=MAX_PAGES + 1 {
        if page > MAX_PAGES {
            facts.flags.push(format!(
                "IAM's ListAccessKeys answer was still truncated after {MAX_PAGES} pages; the key's age is not disclosed"
            ));
            break;
        }
        let mut params = vec![("Action", "ListAccessKeys"), ("Version", IAM_VERSION)];
        if let Some(m) = &marker {
            params.push(("Marker", m));
        }
        let next = match signed_post(client, endpoint, keys, &params, now).await {
            Ok(resp) => access_keys_page(resp.status, &resp.body, keys.access_key_id, facts),
            Err(failed) => {
                facts.flags.push(format!(
                    "IAM could not be asked ({}); the key's age is not disclosed this time",
                    failed.reason
                ));
                None
            }
        };
        match next {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    let params = [
        ("Action", "GetAccessKeyLastUsed"),
        ("AccessKeyId", keys.access_key_id),
        ("Version", IAM_VERSION),
    ];
    match signed_post(client, endpoint, keys, &params, now).await {
        Ok(resp) => last_used(resp.status, &resp.body, facts),
        Err(failed) => facts.flags.push(format!(
            "IAM could not be asked ({}); the key's last use is not disclosed this time",
            failed.reason
        )),
    }
}

/// Reads one `ListAccessKeys` page. When the key is on it, its creation date, status and
/// user go into `facts`; when it is not and the page says more follow, returns the marker
/// of the next page; otherwise flags why the age is not disclosed. Pure.
pub fn access_keys_page(
    status: u16,
    body: &[u8],
    access_key_id: &str,
    facts: &mut TokenFacts,
) -> Option<String> {
    if status != 200 {
        facts
            .flags
            .push(refusal("ListAccessKeys", status, body, "age"));
        return None;
    }
    let doc = match answer(body, "ListAccessKeysResponse", "ListAccessKeysResult") {
        Ok(d) => d,
        Err(what) => {
            facts.flags.push(format!(
                "IAM's ListAccessKeys answer is not the documented XML ({what}); the key's age is not disclosed"
            ));
            return None;
        }
    };
    let found = doc
        .at(&["AccessKeyMetadata"])
        .into_iter()
        .flat_map(|list| list.children_named("member"))
        .find(|m| m.text_at(&["AccessKeyId"]) == Some(access_key_id));
    let Some(key) = found else {
        let truncated = doc.text_at(&["IsTruncated"]) == Some("true");
        if let (true, Some(marker)) = (truncated, doc.text_at(&["Marker"])) {
            return Some(marker.to_string());
        }
        facts.flags.push(
            "IAM does not list this access key among its user's keys; the key's age is not disclosed"
                .into(),
        );
        return None;
    };
    if let Some(user) = key.text_at(&["UserName"]) {
        facts.extra.insert("user_name".into(), user.to_string());
    }
    match key.text_at(&["Status"]) {
        Some("Active") => {}
        Some(other @ ("Inactive" | "Expired")) => {
            facts
                .extra
                .insert("key_status".into(), other.to_ascii_lowercase());
            facts.flags.push(format!(
                "IAM lists the key as {other} although STS accepted it (IAM changes take a moment to apply everywhere)"
            ));
        }
        Some(_) => facts
            .flags
            .push("IAM lists the key with a status it does not document".into()),
        None => {}
    }
    match key.text_at(&["CreateDate"]).map(str::parse::<Timestamp>) {
        Some(Ok(at)) => facts.issued_at = Some(at),
        Some(Err(_)) => facts.flags.push(
            "IAM's CreateDate for the key is not a time; the key's age is not disclosed".into(),
        ),
        None => facts
            .flags
            .push("IAM gives no CreateDate for the key; the key's age is not disclosed".into()),
    }
    None
}

/// Reads a `GetAccessKeyLastUsed` answer into `facts`: the time, service and region of the
/// key's last use, or a flag. Pure.
pub fn last_used(status: u16, body: &[u8], facts: &mut TokenFacts) {
    if status != 200 {
        facts
            .flags
            .push(refusal("GetAccessKeyLastUsed", status, body, "last use"));
        return;
    }
    let doc = match answer(
        body,
        "GetAccessKeyLastUsedResponse",
        "GetAccessKeyLastUsedResult",
    ) {
        Ok(d) => d,
        Err(what) => {
            facts.flags.push(format!(
                "IAM's GetAccessKeyLastUsed answer is not the documented XML ({what}); the key's last use is not disclosed"
            ));
            return;
        }
    };
    let Some(used) = doc.child("AccessKeyLastUsed") else {
        facts.flags.push(
            "IAM's GetAccessKeyLastUsed answer has no AccessKeyLastUsed; the key's last use is not disclosed"
                .into(),
        );
        return;
    };
    // A key never used has no LastUsedDate, and N/A as its service and region.
    for (field, name) in [
        ("ServiceName", "last_used_service"),
        ("Region", "last_used_region"),
    ] {
        if let Some(v) = used.text_at(&[field]).filter(|v| *v != "N/A") {
            facts.extra.insert(name.into(), v.to_string());
        }
    }
    match used.text_at(&["LastUsedDate"]).map(str::parse::<Timestamp>) {
        Some(Ok(at)) => facts.last_used_at = Some(at),
        Some(Err(_)) => facts
            .flags
            .push("IAM's LastUsedDate for the key is not a time".into()),
        None => {
            facts.extra.insert("last_used".into(), "never".into());
        }
    }
}

/// The result element of a successful answer, after checking the root's name.
fn answer(body: &[u8], root: &str, result: &str) -> Result<Element, &'static str> {
    let mut doc = xml::parse(body)?;
    if doc.name != root {
        return Err("not the answer to this call");
    }
    let at = doc
        .children
        .iter()
        .position(|c| c.name == result)
        .ok_or("no result element")?;
    Ok(doc.children.swap_remove(at))
}

/// The flag for an IAM refusal: which call, the documented code if there is one, what stays
/// undisclosed, and for `AccessDenied` the permission that would lift it.
fn refusal(call: &str, status: u16, body: &[u8], what: &str) -> String {
    match error_of(body) {
        Some(e) if e.code == "AccessDenied" || e.code == "AccessDeniedException" => format!(
            "IAM refused {call} ({}): allow iam:{call} on the key's own user to see the key's {what}",
            e.code
        ),
        Some(e)
            if matches!(
                e.code.as_str(),
                "Throttling" | "ThrottlingException" | "RequestLimitExceeded"
            ) =>
        {
            format!(
                "IAM asked to slow down ({}); the key's {what} is read again at the next probe",
                e.code
            )
        }
        Some(e) => format!(
            "IAM answered HTTP {status} ({}) to {call}; the key's {what} is not disclosed",
            safe_code(&e.code)
        ),
        None => format!("IAM answered HTTP {status} to {call}; the key's {what} is not disclosed"),
    }
}

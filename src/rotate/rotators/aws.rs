//! `aws_rotate`: a new IAM access key for the key's own user, the old one made inactive once
//! the new one works, and deleted after the grace (`retire_after`). Every call is IAM's Query
//! API signed with Signature Version 4 by the token's own key (no `UserName`: IAM acts on
//! the signing key's user), so the only permissions needed are on `user/${aws:username}`.
//! The readers are pure; errors name a call and a documented code, never a value.

use jiff::Timestamp;

use crate::provider::ProviderConfig;
use crate::provider::aws::iam::IAM_VERSION;
use crate::provider::aws::{self, Endpoint, Keys, error_of, safe_code, signed_post, xml};
use crate::provider::http;
use crate::schema::TokenSpec;

use super::super::machine::Pending;
use super::{read_secret, unreachable};

/// IAM's limit of access keys per user.
pub const KEYS_PER_USER: usize = 2;

fn endpoint(provider: &ProviderConfig) -> Result<Endpoint, String> {
    let ProviderConfig::Aws(config) = provider else {
        return Err("aws_rotate needs an aws provider".into());
    };
    config.iam_endpoint()
}

/// One signed IAM call with the token's current key (read from its sources now).
async fn call(
    token: &TokenSpec,
    provider: &ProviderConfig,
    params: &[(&str, &str)],
    now: Timestamp,
) -> Result<http::Response, String> {
    let endpoint = endpoint(provider)?;
    let key_id = aws::access_key_id(token).await?;
    let secret = read_secret(token).await?;
    let keys = Keys {
        access_key_id: &key_id,
        secret_access_key: secret.expose(),
        session_token: None,
    };
    signed_post(&http::client(), &endpoint, &keys, params, now)
        .await
        .map_err(unreachable)
}

/// `ListAccessKeys` (refusing when the user already has two keys), then `CreateAccessKey`.
/// The answer holds the new secret: the caller saves it before anything else, and never
/// repeats this call after a crash (`Rotator::idempotent`).
pub async fn create(
    token: &TokenSpec,
    provider: &ProviderConfig,
    now: Timestamp,
) -> Result<Pending, String> {
    let old = aws::access_key_id(token).await?;
    let listed = call(
        token,
        provider,
        &[("Action", "ListAccessKeys"), ("Version", IAM_VERSION)],
        now,
    )
    .await?;
    let keys = parse_key_list(&listed)?;
    if keys.len() >= KEYS_PER_USER {
        return Err(format!(
            "the key's IAM user already has {} access keys (IAM allows {KEYS_PER_USER}): delete the one not in use; nothing was created or deleted",
            keys.len()
        ));
    }
    let created = call(
        token,
        provider,
        &[("Action", "CreateAccessKey"), ("Version", IAM_VERSION)],
        now,
    )
    .await?;
    let mut pending = parse_created(&created)?;
    pending.old_key_id = Some(old);
    Ok(pending)
}

/// `UpdateAccessKey Status=Inactive` on the old key, signed with the new one (which the
/// token's sources now hold). Repeatable: an inactive key stays inactive.
pub async fn deactivate(
    token: &TokenSpec,
    provider: &ProviderConfig,
    old_key_id: &str,
    now: Timestamp,
) -> Result<(), String> {
    refuse_current(token, old_key_id).await?;
    let answer = call(
        token,
        provider,
        &[
            ("Action", "UpdateAccessKey"),
            ("AccessKeyId", old_key_id),
            ("Status", "Inactive"),
            ("Version", IAM_VERSION),
        ],
        now,
    )
    .await?;
    check_empty(&answer, "UpdateAccessKey", false)
}

/// `DeleteAccessKey` of the old key. A key IAM no longer has (`NoSuchEntity`) is done.
pub async fn delete(
    token: &TokenSpec,
    provider: &ProviderConfig,
    old_key_id: &str,
    now: Timestamp,
) -> Result<(), String> {
    refuse_current(token, old_key_id).await?;
    let answer = call(
        token,
        provider,
        &[
            ("Action", "DeleteAccessKey"),
            ("AccessKeyId", old_key_id),
            ("Version", IAM_VERSION),
        ],
        now,
    )
    .await?;
    check_empty(&answer, "DeleteAccessKey", true)
}

/// Never retires the key the token's sources hold now.
async fn refuse_current(token: &TokenSpec, old_key_id: &str) -> Result<(), String> {
    if aws::access_key_id(token).await? == old_key_id {
        return Err(
            "the key to retire is the one the token's access_key_id_file holds: not retired".into(),
        );
    }
    Ok(())
}

/// The error of an IAM refusal: the call, the status, and the documented code.
fn refusal(call: &str, answer: &http::Response) -> String {
    match error_of(&answer.body) {
        Some(e) if e.code == "LimitExceeded" => format!(
            "IAM refused {call} (LimitExceeded: the user has {KEYS_PER_USER} access keys already)"
        ),
        Some(e) if matches!(e.code.as_str(), "AccessDenied" | "AccessDeniedException") => {
            format!(
                "IAM refused {call} ({}): allow iam:{call} on the key's own user",
                e.code
            )
        }
        Some(e) => format!(
            "IAM answered {call} with status {} ({})",
            answer.status,
            safe_code(&e.code)
        ),
        None => format!("IAM answered {call} with status {}", answer.status),
    }
}

/// The `AccessKeyId`s of a `ListAccessKeys` answer. Pure.
pub fn parse_key_list(answer: &http::Response) -> Result<Vec<String>, String> {
    if answer.status != 200 {
        return Err(refusal("ListAccessKeys", answer));
    }
    let doc = xml::parse(&answer.body)
        .ok()
        .filter(|d| d.name == "ListAccessKeysResponse")
        .ok_or("IAM's ListAccessKeys answer is not the documented XML")?;
    let list = doc
        .at(&["ListAccessKeysResult", "AccessKeyMetadata"])
        .ok_or("IAM's ListAccessKeys answer has no AccessKeyMetadata")?;
    Ok(list
        .children_named("member")
        .filter_map(|m| m.text_at(&["AccessKeyId"]).map(str::to_string))
        .collect())
}

/// The new key of a `CreateAccessKey` answer. Pure.
pub fn parse_created(answer: &http::Response) -> Result<Pending, String> {
    if answer.status != 200 {
        return Err(refusal("CreateAccessKey", answer));
    }
    let doc = xml::parse(&answer.body)
        .ok()
        .filter(|d| d.name == "CreateAccessKeyResponse")
        .ok_or("IAM's CreateAccessKey answer is not the documented XML")?;
    let key = doc
        .at(&["CreateAccessKeyResult", "AccessKey"])
        .ok_or("IAM's CreateAccessKey answer has no AccessKey")?;
    let id = key
        .text_at(&["AccessKeyId"])
        .filter(|id| aws::is_access_key_id(id))
        .ok_or("IAM's CreateAccessKey answer has no valid AccessKeyId")?;
    let secret = key
        .text_at(&["SecretAccessKey"])
        .filter(|s| !s.trim().is_empty())
        .ok_or("IAM's CreateAccessKey answer has no SecretAccessKey")?;
    Ok(Pending {
        value: Some(secret.to_string()),
        key_id: Some(id.to_string()),
        ..Pending::default()
    })
}

/// An answer without a result (`UpdateAccessKey`, `DeleteAccessKey`). Pure. `gone_is_done`:
/// `NoSuchEntity` means the work is already done (a delete repeated after a crash).
pub fn check_empty(answer: &http::Response, call: &str, gone_is_done: bool) -> Result<(), String> {
    if answer.status == 200 {
        return Ok(());
    }
    if gone_is_done && error_of(&answer.body).is_some_and(|e| e.code == "NoSuchEntity") {
        return Ok(());
    }
    Err(refusal(call, answer))
}

#[cfg(test)]
mod tests;

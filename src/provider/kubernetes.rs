//! `kubernetes`: asks the API server's TokenReview API whether a service-account token (or any
//! token the cluster authenticates) is accepted, and reads the expiry from the JWT itself.
//! Network I/O and the CA file in `build`/`probe`; `parse` is pure.
//!
//! The review is `POST /apis/authentication.k8s.io/v1/tokenreviews` with the exporter's own
//! bearer token, which needs `create` on `tokenreviews` (the `system:auth-delegator` cluster
//! role). The reviewed token travels in the JSON body, never in a URL. A rejected token still
//! gets a normal answer with `authenticated` false; 401 and 403 concern the exporter's own
//! credentials and are `misconfigured`, never "token invalid".
//!
//! Bound tokens carry `kubernetes.io.warnafter` (about an hour after issue) while their `exp`
//! may be extended to a year: `warnafter` is the intended expiry and is exported as such.
//! Legacy secret-based tokens have no `exp` and never expire.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::http::{self, common_status};
use super::jwt;
use super::{
    BoxFuture, BuildContext, Provider, ProviderKind, Renamed, refuse_params, renamed_setting,
    require_secret,
};
use crate::model::{Expiry, ExpiryModel, ProbeOutcome, Reason, TokenFacts};
use crate::schema::TokenSpec;
use crate::secret::{Credential, FileSource, Secret, SecretSource};

/// The API server as seen from inside a cluster.
pub const DEFAULT_URL: &str = "https://kubernetes.default.svc";
/// The exporter's own service-account token when it runs in a pod.
pub const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The cluster CA when the exporter runs in a pod.
pub const IN_CLUSTER_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// The TokenReview resource path under the API server.
const TOKENREVIEWS_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// A CA bundle is a few KiB; anything much larger is a wrong path.
const MAX_CA_BYTES: u64 = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The API server's address (a path prefix is kept); the kind appends
    /// `/apis/authentication.k8s.io/v1/tokenreviews`. Defaults to [`DEFAULT_URL`].
    pub url: Option<String>,
    /// The old name of `url`, kept with the same meaning.
    pub api_server: Option<String>,
    /// The exporter's own bearer token for the review. Defaults to the in-cluster token file,
    /// but only with the in-cluster API server, so a pod's token is never sent elsewhere.
    pub token: Option<SecretSource>,
    /// The CA bundle that signs the API server's certificate; when set (or found in-cluster)
    /// it is the only trust anchor, as with kubectl's `certificate-authority`.
    pub ca_file: Option<PathBuf>,
    pub max_concurrency: Option<usize>,
}

impl Config {
    /// The API server's address, under either name (`validate` refuses both at once).
    pub fn server(&self) -> &str {
        self.url
            .as_deref()
            .or(self.api_server.as_deref())
            .unwrap_or(DEFAULT_URL)
            .trim_end_matches('/')
    }

    /// True when the API server is the in-cluster one, where the pod's token and CA apply.
    pub fn in_cluster(&self) -> bool {
        self.server() == DEFAULT_URL
    }

    pub fn own_token(&self) -> SecretSource {
        self.token
            .clone()
            .unwrap_or_else(|| SecretSource::File(FileSource::new(IN_CLUSTER_TOKEN)))
    }

    /// The CA file to trust: the configured one, or the in-cluster one when it exists and the
    /// API server is the in-cluster one.
    pub fn ca_file(&self) -> Option<PathBuf> {
        match &self.ca_file {
            Some(path) => Some(path.clone()),
            None if self.in_cluster() && Path::new(IN_CLUSTER_CA).exists() => {
                Some(PathBuf::from(IN_CLUSTER_CA))
            }
            None => None,
        }
    }
}

impl ProviderKind for Config {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn validate(&self) -> Result<(), String> {
        let name = renamed_setting(
            ("url", self.url.as_ref()),
            ("api_server", self.api_server.as_ref()),
        )?
        .map_or("url", |(name, _)| name);
        http::check_base_url(name, self.server())?;
        if !self.in_cluster() && self.token.is_none() {
            return Err(format!(
                "token is required when {name} is not {DEFAULT_URL}: the in-cluster service-account token is only ever sent to the in-cluster API server"
            ));
        }
        if let Some(path) = &self.ca_file {
            if path.as_os_str().is_empty() {
                return Err("ca_file: the path is empty".into());
            }
            // Loading the bundle now makes `--config.check` and a reload catch a wrong path
            // or a file that holds no certificate, instead of the first probe.
            client_with_ca(path)?;
        }
        Ok(())
    }

    fn check_token(&self, token: &TokenSpec) -> Result<(), String> {
        require_secret(token, self.kind())?;
        refuse_params(token, self.kind(), &["audiences"])?;
        if let Some(auds) = &token.params.audiences
            && (auds.is_empty() || auds.iter().any(|a| a.trim().is_empty()))
        {
            return Err("audiences must list at least one non-empty audience".into());
        }
        Ok(())
    }

    fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Provider>, String> {
        let http = match self.ca_file() {
            Some(path) => client_with_ca(&path)?,
            None => ctx.http.clone(),
        };
        Ok(Arc::new(Kubernetes {
            endpoint: http::join(self.server(), TOKENREVIEWS_PATH),
            own_token: Credential::new(self.own_token()),
            http,
        }))
    }

    fn renamed_in_use(&self) -> Vec<Renamed> {
        self.api_server
            .iter()
            .map(|_| Renamed {
                old: "api_server",
                new: "url",
                rewrite: None,
            })
            .collect()
    }
}

/// A client like [`http::client`] (no redirects, the same bounds) that trusts only the CAs
/// in `path`. The API server's certificate is signed by the cluster's own CA, which no public
/// root store holds; trusting only it is what kubectl does with `certificate-authority`.
pub fn client_with_ca(path: &Path) -> Result<http::Client, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("ca_file {shown}: cannot read: {e}"))?;
    if meta.len() > MAX_CA_BYTES {
        return Err(format!(
            "ca_file {shown}: larger than {MAX_CA_BYTES} bytes; is this the CA bundle?"
        ));
    }
    let pem = std::fs::read(path).map_err(|e| format!("ca_file {shown}: cannot read: {e}"))?;
    http::Client::trusting_only(&pem).map_err(|e| format!("ca_file {shown}: {e}"))
}

struct Kubernetes {
    endpoint: String,
    own_token: Credential,
    http: http::Client,
}

impl Provider for Kubernetes {
    fn probe<'a>(
        &'a self,
        token: &'a TokenSpec,
        secret: &'a Secret,
        now: Timestamp,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            // Re-read on every probe: the pod's projected token is rotated by the kubelet.
            let own = match self.own_token.read().await {
                Ok(own) => own,
                Err(e) => {
                    return ProbeOutcome::misconfigured(
                        Reason::SecretUnavailable,
                        format!("the exporter's own Kubernetes token: {e}"),
                    );
                }
            };
            // Opaque (non-JWT) tokens exist, e.g. behind a webhook authenticator: they are
            // reviewed all the same, only their expiry stays undisclosed.
            let claims = jwt::split(secret.expose()).ok().map(|(_, claims)| claims);
            let audiences = token.params.audiences.as_deref();
            let body = review_request(secret.expose(), audiences);
            let request = self
                .http
                .post(&self.endpoint)
                .bearer_auth(own.expose())
                .header(reqwest::header::ACCEPT, http::JSON)
                .json(&body);
            match http::send(request).await {
                Ok(resp) => parse(
                    resp.status,
                    &resp.headers,
                    &resp.body,
                    now,
                    claims.as_ref(),
                    audiences,
                ),
                Err(outcome) => outcome.with_facts(local_facts(claims.as_ref(), now)),
            }
        })
    }
}

/// The TokenReview object sent to the API server.
pub fn review_request(token: &str, audiences: Option<&[String]>) -> Value {
    let mut spec = json!({ "token": token });
    if let Some(auds) = audiences {
        spec["audiences"] = json!(auds);
    }
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": spec,
    })
}

/// What the JWT says about itself, read without a key. Pure.
///
/// Nothing here is trusted for the verdict, which is the API server's; the claims only give
/// the expiry (with `warnafter` preferred), the issue time, the issuer and the token's kind.
pub fn local_facts(claims: Option<&Value>, now: Timestamp) -> TokenFacts {
    let Some(claims) = claims else {
        return TokenFacts::default();
    };
    let mut facts = jwt::evaluate(claims, false, now, Duration::ZERO).facts;
    // `verified: false` describes the local decode; the verdict comes from the API server.
    facts.extra.remove("verified");
    facts.token_type = if claims.get("kubernetes.io").is_some_and(Value::is_object) {
        Some("bound_service_account".into())
    } else if claims
        .get("kubernetes.io/serviceaccount/namespace")
        .is_some()
    {
        // A legacy token Secret's JWT never expires: only its age (and the API server's
        // cleanup of unused ones) ends it.
        if facts.expiry == Expiry::Never {
            facts.expiry_model = ExpiryModel::AgeOnly;
        }
        Some("legacy_service_account".into())
    } else {
        facts.token_type
    };
    facts
}

/// Turns a TokenReview answer into an outcome. Pure.
///
/// `claims` are the reviewed token's JWT claims when it is a JWT; `audiences` are the ones
/// the review asked for.
pub fn parse(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    claims: Option<&Value>,
    audiences: Option<&[String]>,
) -> ProbeOutcome {
    let rate = http::rate_limit(headers);
    let mut facts = local_facts(claims, now);
    match status {
        // The API server answers a create with 201; 200 is accepted from proxies.
        200 | 201 => {}
        401 => {
            return ProbeOutcome::misconfigured(
                Reason::ClientAuth,
                "the API server does not accept the exporter's own token (HTTP 401)",
            )
            .with_facts(facts)
            .with_rate_limit(rate);
        }
        403 => {
            return ProbeOutcome::misconfigured(
                Reason::ClientAuth,
                "the exporter's own identity may not create tokenreviews (HTTP 403); bind it to the system:auth-delegator cluster role",
            )
            .with_facts(facts)
            .with_rate_limit(rate);
        }
        _ => return common_status(status, headers, now).with_facts(facts),
    }
    let fail = |o: ProbeOutcome, facts: TokenFacts| o.with_facts(facts).with_rate_limit(rate);
    let doc: Value = match http::json(body) {
        Ok(v) => v,
        Err(o) => return fail(o, facts),
    };
    if doc.get("kind").and_then(Value::as_str) != Some("TokenReview") {
        return fail(ProbeOutcome::bad_response("not a TokenReview"), facts);
    }
    let Some(review) = doc.get("status").filter(|s| s.is_object()) else {
        return fail(ProbeOutcome::bad_response("no \"status\" object"), facts);
    };
    // `authenticated` is omitted when false (Go's omitempty).
    let authenticated = match review.get("authenticated") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return fail(
                ProbeOutcome::bad_response("\"status.authenticated\" is not a boolean"),
                facts,
            );
        }
    };
    if !authenticated {
        let error = review.get("error").and_then(Value::as_str).unwrap_or("");
        return rejected(error, &facts, now)
            .with_facts(facts)
            .with_rate_limit(rate);
    }
    let user = review.get("user");
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if let Some(username) = text(user.and_then(|u| u.get("username"))) {
        facts.subject = Some(username);
    }
    if let Some(uid) = text(user.and_then(|u| u.get("uid"))) {
        facts.extra.insert("uid".into(), uid);
    }
    let groups = strings(user.and_then(|u| u.get("groups")));
    if !groups.is_empty() {
        facts.extra.insert("groups".into(), groups.join(","));
    }
    let user_extra = user.and_then(|u| u.get("extra"));
    for (key, name) in [
        ("authentication.kubernetes.io/pod-name", "pod_name"),
        ("authentication.kubernetes.io/node-name", "node_name"),
    ] {
        let values = strings(user_extra.and_then(|e| e.get(key)));
        if let Some(first) = values.into_iter().next() {
            facts.extra.insert(name.into(), first);
        }
    }
    let confirmed = strings(review.get("audiences"));
    if let Some(wanted) = audiences {
        // Kubernetes documents that a client asking for audiences must check that one of them
        // comes back: an empty list means the token is only good for the API server itself.
        if !confirmed.iter().any(|a| wanted.contains(a)) {
            return ProbeOutcome::invalid(
                Reason::WrongAudience,
                "the API server accepts the token but confirms none of the configured audiences",
            )
            .with_facts(facts)
            .with_rate_limit(rate);
        }
    }
    if !confirmed.is_empty() {
        facts.audience = confirmed;
    }
    if let Expiry::At(at) = facts.expiry
        && at <= now
    {
        let flag = if facts.extra.contains_key("exp") {
            "the token is past kubernetes.io warnafter, its intended expiry; the API server still accepts it because its exp was extended"
        } else {
            "the API server accepts a token whose exp has passed"
        };
        facts.flags.push(flag.into());
    }
    ProbeOutcome::valid(facts).with_rate_limit(rate)
}

/// The outcome for `authenticated: false`. The API server's `status.error` text is matched
/// against the phrases Kubernetes uses, but never echoed: it is free text from the server.
fn rejected(error: &str, facts: &TokenFacts, now: Timestamp) -> ProbeOutcome {
    let e = error.to_ascii_lowercase();
    if e.contains("audience") {
        ProbeOutcome::invalid(
            Reason::WrongAudience,
            "the API server rejects the token for the requested audiences",
        )
    } else if e.contains("expired") {
        ProbeOutcome::invalid(Reason::Expired, "the API server says the token has expired")
    } else if e.contains("not valid yet") {
        ProbeOutcome::invalid(
            Reason::NotYetValid,
            "the API server says the token is not valid yet",
        )
    } else if e.contains("invalidated")
        || e.contains("has been deleted")
        || e.contains("not found")
        || e.contains("does not match")
    {
        ProbeOutcome::invalid(
            Reason::Revoked,
            "the API server says the token was invalidated (its pod, secret or service account is gone or was replaced)",
        )
    } else if facts
        .expiry
        .timestamp()
        .is_some_and(|at| at <= now && !facts.extra.contains_key("exp"))
    {
        ProbeOutcome::invalid(
            Reason::Expired,
            "the API server does not accept the token, whose exp has passed",
        )
    } else {
        ProbeOutcome::invalid(
            Reason::UnknownToken,
            "the API server does not accept the token",
        )
    }
}

/// A JSON array of strings (non-strings skipped); anything else is empty.
fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests;

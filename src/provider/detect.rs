//! Which product issued a token, from the token's own text: the documented prefixes that
//! products put on their tokens so leaked ones can be recognised. Pure.
//!
//! [`PREFIXES`] is the one table (docs/sources.md shows it; the unit tests hold every row to
//! an example). A row names the provider `kind` that can probe such a token, or `None` where
//! the exporter has no kind for the product: a directory source then skips the token with
//! reason `no_provider` instead of guessing. Only prefixes a product documents as its own are
//! listed; a short or generic one (Vault's legacy `s.`, `sk-`) would misfile other tokens.

/// One row of the prefix table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The text the token starts with, compared exactly.
    pub prefix: &'static str,
    /// What the token is, for people (`docs/sources.md`, the page's detail).
    pub product: &'static str,
    /// The provider kind that probes it, when there is one.
    pub kind: Option<&'static str>,
}

const fn row(prefix: &'static str, product: &'static str, kind: Option<&'static str>) -> Prefix {
    Prefix {
        prefix,
        product,
        kind,
    }
}

/// The prefix table. No prefix is a prefix of another row's, so the order does not decide.
pub const PREFIXES: &[Prefix] = &[
    row(
        "github_pat_",
        "GitHub fine-grained personal access token",
        Some("github"),
    ),
    row(
        "ghp_",
        "GitHub personal access token (classic)",
        Some("github"),
    ),
    row("gho_", "GitHub OAuth app token", Some("github")),
    row("ghu_", "GitHub App user access token", Some("github")),
    row(
        "ghs_",
        "GitHub App installation access token",
        Some("github"),
    ),
    row("ghr_", "GitHub App refresh token", None),
    row(
        "glpat-",
        "GitLab personal, project or group access token",
        Some("gitlab"),
    ),
    row("gldt-", "GitLab deploy token", None),
    row("glrt-", "GitLab runner authentication token", None),
    row("xoxb-", "Slack bot token", Some("slack")),
    row("xoxp-", "Slack user token", Some("slack")),
    row("xapp-", "Slack app-level token", Some("slack")),
    row("xoxe.", "Slack refresh token", None),
    row("hvs.", "Vault service token", Some("vault")),
    row("hvb.", "Vault batch token", Some("vault")),
    row("npm_", "npm access token", Some("npm")),
    // `docker_hub` probes these only with the account's `username`, which a file or a
    // Secret does not give: a discovered one would be a token that cannot be checked.
    row("dckr_pat_", "Docker Hub personal access token", None),
    row("dckr_oat_", "Docker Hub organization access token", None),
    row("pypi-", "PyPI API token", None),
];

/// What a JWT is detected as: three base64url parts, the first a JSON header (`eyJ`).
pub const JWT: Prefix = row("eyJ", "JSON Web Token", Some("jwt"));

/// The row a token matches, if any. Never copies the token.
pub fn detect(token: &str) -> Option<&'static Prefix> {
    if let Some(row) = PREFIXES.iter().find(|r| token.starts_with(r.prefix)) {
        return Some(row);
    }
    is_jwt(token).then_some(&JWT)
}

/// A compact JWS: `header.payload.signature`, base64url, the header a JSON object.
fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && token.starts_with(JWT.prefix)
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One example per row, written as the product documents its tokens.
    const EXAMPLES: &[(&str, &str)] = &[
        (
            "github_pat_",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        ),
        ("ghp_", "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"),
        ("gho_", "gho_0123456789abcdefghijklmnopqrstuvwxyzAB"),
        ("ghu_", "ghu_0123456789abcdefghijklmnopqrstuvwxyzAB"),
        ("ghs_", "ghs_0123456789abcdefghijklmnopqrstuvwxyzAB"),
        ("ghr_", "ghr_0123456789abcdefghijklmnopqrstuvwxyzAB"),
        ("glpat-", "glpat-0123456789abcdefghij"),
        ("gldt-", "gldt-0123456789abcdefghij"),
        ("glrt-", "glrt-0123456789abcdefghij"),
        ("xoxb-", "xoxb-1234-5678-abcdefghijkl"),
        ("xoxp-", "xoxp-1234-5678-9012-abcdefghijkl"),
        ("xapp-", "xapp-1-A0123-456-abcdef"),
        ("xoxe.", "xoxe.xoxp-1-abcdefghijkl"),
        ("hvs.", "hvs.CAESIJ0123456789abcdefghijklmnop"),
        ("hvb.", "hvb.AAAAAQJ0123456789abcdefghijklmnop"),
        ("npm_", "npm_0123456789abcdefghijklmnopqrstuvwxyz"),
        ("dckr_pat_", "dckr_pat_0123456789abcdefghijklmnop"),
        ("dckr_oat_", "dckr_oat_0123456789abcdefghijklmnop"),
        ("pypi-", "pypi-AgEIcHlwaS5vcmcCJDAxMjM0NTY3"),
    ];

    #[test]
    fn every_row_has_an_example_that_detects_as_it() {
        assert_eq!(EXAMPLES.len(), PREFIXES.len());
        for row in PREFIXES {
            let (_, example) = EXAMPLES
                .iter()
                .find(|(p, _)| *p == row.prefix)
                .unwrap_or_else(|| panic!("no example for {}", row.prefix));
            assert_eq!(detect(example), Some(row), "{example}");
        }
    }

    #[test]
    fn no_prefix_is_a_prefix_of_another_row() {
        for a in PREFIXES {
            for b in PREFIXES {
                if a != b {
                    assert!(
                        !b.prefix.starts_with(a.prefix),
                        "{} / {}",
                        a.prefix,
                        b.prefix
                    );
                }
            }
        }
    }

    #[test]
    fn every_named_kind_is_registered() {
        for row in PREFIXES.iter().chain([&JWT]) {
            if let Some(kind) = row.kind {
                assert!(crate::provider::KINDS.contains(&kind), "{kind}");
            }
        }
    }

    #[test]
    fn jwts_are_three_base64url_parts_with_a_json_header() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(detect(jwt).map(|r| r.kind), Some(Some("jwt")));
        // Unsigned (`alg: none`) tokens end with an empty signature; still a JWT.
        assert!(detect("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.").is_some());
        for not in [
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0",
            "eyJhbGciOiJIUzI1NiJ9..c2ln",
            "eyJ a.b.c",
            "abc.def.ghi",
        ] {
            assert_eq!(detect(not), None, "{not}");
        }
    }

    #[test]
    fn unknown_and_near_miss_tokens_are_not_detected() {
        for not in [
            "",
            "gh_abc",
            "GHP_abc",
            "glpat_abc",
            "xox-abc",
            "hvs",
            "s.abcdef",
            "Bearer ghp_x",
        ] {
            assert_eq!(detect(not), None, "{not}");
        }
    }
}

//! A certificate credential: the app's RSA private key and its certificate, as one PEM text
//! (the token's secret), turned into the signed client assertion the client-credentials
//! grant takes in place of a secret. Pure: the time and the assertion's id are arguments.
//!
//! The assertion follows the Microsoft identity platform's current format: header
//! `alg: PS256`, `typ: JWT`, `x5t#S256` (the base64url SHA-256 thumbprint of the
//! certificate's DER); claims `aud` (the token endpoint), `iss` and `sub` (the client id),
//! `jti`, `nbf`, `iat`, `exp`. The signature is made by rustls' aws-lc-rs provider, the
//! constant-time RSA implementation the TLS stack already carries: the `rsa` crate is in the
//! build only to verify, and its advisory (RUSTSEC-2023-0071) is about private-key operations.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use rustls::SignatureScheme;
use rustls::crypto::aws_lc_rs::sign::RsaSigningKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;
use serde_json::json;
use sha2::{Digest, Sha256};

/// How long an assertion is good for. The platform asks for a short life (5 to 10 minutes
/// after `nbf`); a probe uses it at once.
pub const LIFETIME_SECONDS: i64 = 600;

/// Whether a secret is a PEM text (a certificate credential) rather than a client secret.
/// Client secrets Entra generates are 16 to 64 characters of letters, digits and `~._-`:
/// never a PEM boundary line, which has a space after `BEGIN`.
pub fn is_pem(secret: &str) -> bool {
    secret.contains("-----BEGIN ")
}

/// A parsed certificate credential.
pub struct Certificate {
    key: RsaSigningKey,
    /// The certificate's DER, compared with `keyCredentials[].key` to find its expiry.
    pub der: Vec<u8>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate").finish_non_exhaustive()
    }
}

/// Reads the private key (PKCS#8 or PKCS#1 RSA) and the first certificate of a PEM text. The
/// error says what is missing, never a byte of the text.
pub fn read_pem(text: &str) -> Result<Certificate, &'static str> {
    let key = PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(
        |_| "the PEM text has no private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)",
    )?;
    let key = RsaSigningKey::new(&key)
        .map_err(|_| "the private key is not an RSA key (Entra ID certificates are RSA)")?;
    let der = CertificateDer::pem_slice_iter(text.as_bytes())
        .next()
        .ok_or("the PEM text has no certificate (BEGIN CERTIFICATE)")?
        .map_err(|_| "the certificate's PEM block cannot be read")?;
    Ok(Certificate {
        key,
        der: der.as_ref().to_vec(),
    })
}

impl Certificate {
    /// The base64url SHA-256 thumbprint of the certificate (`x5t#S256`).
    pub fn thumbprint_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
    }

    /// The signed assertion for `client_id` at `audience` (the token endpoint), valid from
    /// `now` for [`LIFETIME_SECONDS`], with the id `jti`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: Timestamp,
        jti: &str,
    ) -> Result<String, &'static str> {
        let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_s256()});
        let at = now.as_second();
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "nbf": at,
            "iat": at,
            "exp": at + LIFETIME_SECONDS,
        });
        let mut jwt = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = self
            .key
            .choose_scheme(&[SignatureScheme::RSA_PSS_SHA256])
            .ok_or("the key cannot sign PS256")?;
        let signature = signer
            .sign(jwt.as_bytes())
            .map_err(|_| "signing the client assertion failed")?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

/// A fresh assertion id: 128 random bits written as a GUID, as the platform's examples are.
pub fn new_jti() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

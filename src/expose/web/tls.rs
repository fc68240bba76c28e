//! The TLS half of a web config: certificates and key read from disk into a rustls
//! server config, and the client-certificate policies the exporter-toolkit names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use serde_saphyr::Spanned;
use zeroize::Zeroizing;

use super::*;

impl RawTls {
    pub(super) fn build(
        &self,
        dir: &Path,
        files: &mut Vec<PathBuf>,
        issues: &mut Issues,
    ) -> Option<Arc<ServerConfig>> {
        const T: &str = "tls_server_config";
        let before = issues.0.len();
        let resolve = |s: &Spanned<String>| dir.join(&s.value);

        let min = self.min_version.as_ref().map(|v| (v.value, line(v)));
        let max = self.max_version.as_ref().map(|v| (v.value, line(v)));
        for (field, version) in [("min_version", min), ("max_version", max)] {
            if let Some((v, at)) = version
                && v < TlsVersion::TLS12
            {
                issues.push(
                    format!("{T}.{field}"),
                    format!("{v:?} is not supported: TLS 1.0 and 1.1 are obsolete (RFC 8996); use TLS12 or TLS13"),
                    at,
                );
            }
        }
        let min_v = min.map_or(TlsVersion::TLS12, |(v, _)| v);
        let max_v = max.map_or(TlsVersion::TLS13, |(v, _)| v);
        if min_v > max_v {
            issues.push(
                format!("{T}.min_version"),
                "is above max_version",
                min.and_then(|(_, l)| l),
            );
        }

        let auth = self
            .client_auth_type
            .as_ref()
            .map(|a| a.value)
            .unwrap_or_default();
        let verifies = matches!(
            auth,
            ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
        );
        match (&self.client_ca_file, auth) {
            (Some(ca), ClientAuthType::NoClientCert) => issues.push(
                format!("{T}.client_ca_file"),
                "is set but client_auth_type is NoClientCert: set client_auth_type (e.g. RequireAndVerifyClientCert) or remove client_ca_file",
                line(ca),
            ),
            (None, _) if verifies => issues.push(
                format!("{T}.client_ca_file"),
                format!("is required by client_auth_type {auth:?}"),
                self.client_auth_type.as_ref().and_then(line),
            ),
            _ => {}
        }

        let chain = match &self.cert_file {
            None => {
                issues.push(format!("{T}.cert_file"), "is required", None);
                None
            }
            Some(f) => {
                let p = resolve(f);
                files.push(p.clone());
                match read_certs(&p) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        issues.push(format!("{T}.cert_file"), e, line(f));
                        None
                    }
                }
            }
        };
        let key = match &self.key_file {
            None => {
                issues.push(format!("{T}.key_file"), "is required", None);
                None
            }
            Some(f) => {
                let p = resolve(f);
                files.push(p.clone());
                match read_key(&p) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        issues.push(format!("{T}.key_file"), e, line(f));
                        None
                    }
                }
            }
        };
        let roots = match &self.client_ca_file {
            None => None,
            Some(f) => {
                let p = resolve(f);
                files.push(p.clone());
                match read_roots(&p) {
                    Ok(r) => Some(Arc::new(r)),
                    Err(e) => {
                        issues.push(format!("{T}.client_ca_file"), e, line(f));
                        None
                    }
                }
            }
        };
        if issues.0.len() > before {
            return None;
        }
        let (chain, key) = (chain?, key?);

        // One explicit provider, so no process-wide default has to be installed.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            (TlsVersion::TLS12, &rustls::version::TLS12),
            (TlsVersion::TLS13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (min_v..=max_v).contains(v))
        .map(|(_, p)| p)
        .collect();
        let builder = match ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
        {
            Ok(b) => b,
            Err(e) => {
                issues.push(T, e.to_string(), None);
                return None;
            }
        };
        let verifier: Arc<dyn ClientCertVerifier> = match auth {
            ClientAuthType::NoClientCert => WebPkiClientVerifier::no_client_auth(),
            ClientAuthType::RequestClientCert | ClientAuthType::RequireAnyClientCert => {
                Arc::new(AnyClientCert {
                    mandatory: auth == ClientAuthType::RequireAnyClientCert,
                    algorithms: provider.signature_verification_algorithms,
                })
            }
            ClientAuthType::VerifyClientCertIfGiven
            | ClientAuthType::RequireAndVerifyClientCert => {
                let roots = roots?;
                let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let builder = if auth == ClientAuthType::VerifyClientCertIfGiven {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                match builder.build() {
                    Ok(v) => v,
                    Err(e) => {
                        issues.push(format!("{T}.client_ca_file"), e.to_string(), None);
                        return None;
                    }
                }
            }
        };
        match builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
        {
            Ok(mut config) => {
                // axum here speaks HTTP/1.1 only; saying so lets clients skip trying h2.
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(Arc::new(config))
            }
            Err(e) => {
                issues.push(
                    format!("{T}.key_file"),
                    format!("does not fit cert_file: {e}"),
                    self.key_file.as_ref().and_then(line),
                );
                None
            }
        }
    }
}

/// `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for and
/// any is accepted, as Go does for these policies. The client still proves it holds the
/// certificate's key; the certificate itself proves nothing.
#[derive(Debug)]
pub(super) struct AnyClientCert {
    pub(super) mandatory: bool,
    pub(super) algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

pub(super) fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    std::fs::read(path)
}

pub(super) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_limited(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {}", path.display()));
    }
    Ok(certs)
}

pub(super) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = Zeroizing::new(
        read_limited(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    // The parser's message is not passed on: it could quote part of the key file.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        format!(
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) found in {}",
            path.display()
        )
    })
}

pub(super) fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("a certificate in {} is not usable: {e}", path.display()))?;
    }
    Ok(roots)
}

//! JWT bearer tokens: the `iss` claim picks the partner, whose one algorithm and key verify it.
//!
//! The unverified header and payload are read only to choose the partner and to refuse a
//! header `alg` other than the partner's (this refuses `none` and HS256/RS256 confusion before
//! any key is used). `jsonwebtoken` then checks the signature, `iss`, `aud` and that `exp` is
//! present; `exp` and `nbf` are checked here against the injected clock, because
//! `jsonwebtoken` would read the system clock.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{partner_name, AuthConfigError, AuthError, JwtConfig, JwtKey};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: i64 = 30;
/// RFC 7518 section 3.2: an HS256 key at least as long as the hash.
const MIN_HS256_SECRET_BYTES: usize = 32;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// One partner's token verifier.
struct Verifier {
    partner: usize,
    /// The header `alg` the partner's tokens must carry.
    algorithm: &'static str,
    key: DecodingKey,
    validation: Validation,
}

/// Every partner's verifier, by issuer.
#[derive(Default)]
pub(super) struct Issuers {
    by_issuer: HashMap<String, Verifier>,
}

#[derive(Deserialize)]
struct UnverifiedHeader {
    alg: String,
}

#[derive(Deserialize)]
struct UnverifiedPayload {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<Value>,
    nbf: Option<Value>,
}

impl Issuers {
    /// Adds partner `index`'s issuer; an issuer shared with another partner is refused.
    pub(super) fn insert(&mut self, config: &JwtConfig, index: usize, names: &[String]) -> Result<(), AuthConfigError> {
        let partner = || partner_name(names, index);
        let invalid = |reason| AuthConfigError::InvalidJwt { partner: partner(), reason };
        if config.issuer.trim().is_empty() {
            return Err(invalid("the issuer is empty"));
        }
        if config.audience.trim().is_empty() {
            return Err(invalid("the audience is empty"));
        }
        if let Some(other) = self.by_issuer.get(&config.issuer) {
            return Err(AuthConfigError::DuplicateIssuer {
                partner: partner(),
                other: partner_name(names, other.partner),
                issuer: config.issuer.clone(),
            });
        }
        let (algorithm, name, key) = match &config.key {
            JwtKey::Hs256(secret) => {
                if secret.len() < MIN_HS256_SECRET_BYTES {
                    return Err(invalid("the HS256 secret is shorter than 32 bytes"));
                }
                (Algorithm::HS256, "HS256", DecodingKey::from_secret(secret.as_bytes()))
            }
            JwtKey::Rs256Pem(pem) => {
                let bad_pem = |reason| AuthConfigError::BadPem { partner: partner(), reason };
                let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| bad_pem("not an RSA key in PEM"))?;
                match key.kind() {
                    DecodingKeyKind::SecretOrDer(der) => check_rsa_public_key(der).map_err(bad_pem)?,
                    DecodingKeyKind::RsaModulusExponent { .. } => {}
                }
                (Algorithm::RS256, "RS256", key)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS.unsigned_abs();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = true;
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        self.by_issuer.insert(config.issuer.clone(), Verifier { partner: index, algorithm: name, key, validation });
        Ok(())
    }

    /// Verifies `token` at `now_unix`; the owning partner's index and the `sub` claim.
    pub(super) fn verify(&self, token: &str, now_unix: i64) -> Result<(usize, Option<String>), AuthError> {
        let (header, payload) = unverified_parts(token)?;
        let issuer = payload.iss.ok_or(invalid("unknown issuer"))?;
        let verifier = self.by_issuer.get(&issuer).ok_or(invalid("unknown issuer"))?;
        if header.alg != verifier.algorithm {
            return Err(invalid("algorithm not allowed"));
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation)
            .map_err(|e| token_error(e.kind()))?
            .claims;
        let exp = claims.exp.as_ref().and_then(numeric_date).ok_or(invalid("missing required claim"))?;
        if exp.saturating_add(LEEWAY_SECS) < now_unix {
            return Err(AuthError::TokenExpired);
        }
        if let Some(nbf) = claims.nbf {
            let nbf = numeric_date(&nbf).ok_or(invalid("malformed"))?;
            if nbf.saturating_sub(LEEWAY_SECS) > now_unix {
                return Err(invalid("not yet valid"));
            }
        }
        Ok((verifier.partner, claims.sub))
    }
}

fn invalid(reason: &'static str) -> AuthError {
    AuthError::InvalidToken { reason }
}

/// The header and payload of a compact JWS, before any verification.
fn unverified_parts(token: &str) -> Result<(UnverifiedHeader, UnverifiedPayload), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed"));
    };
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| invalid("malformed"))?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid("malformed"))?;
    let header = serde_json::from_slice(&header).map_err(|_| invalid("malformed"))?;
    let payload = serde_json::from_slice(&payload).map_err(|_| invalid("malformed"))?;
    Ok((header, payload))
}

fn token_error(kind: &ErrorKind) -> AuthError {
    invalid(match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidIssuer => "unknown issuer",
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "algorithm not allowed",
        ErrorKind::MissingRequiredClaim(_) => "missing required claim",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::ExpiredSignature => return AuthError::TokenExpired,
        _ => "malformed",
    })
}

/// A JWT NumericDate (seconds, possibly fractional) as whole unix seconds.
fn numeric_date(value: &Value) -> Option<i64> {
    match value.as_i64() {
        Some(seconds) => Some(seconds),
        None => value.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64),
    }
}

/// Checks that `der` is a PKCS#1 `RSAPublicKey` (SEQUENCE { modulus, publicExponent }) of at
/// least 2048 bits; catches private keys and garbage that `from_rsa_pem` lets through.
fn check_rsa_public_key(der: &[u8]) -> Result<(), &'static str> {
    const NOT_PUBLIC: &str = "not an RSA public key";
    let (0x30, sequence, []) = der_element(der).ok_or(NOT_PUBLIC)? else { return Err(NOT_PUBLIC) };
    let (0x02, modulus, rest) = der_element(sequence).ok_or(NOT_PUBLIC)? else { return Err(NOT_PUBLIC) };
    let (0x02, _exponent, []) = der_element(rest).ok_or(NOT_PUBLIC)? else { return Err(NOT_PUBLIC) };
    let significant = modulus.iter().skip_while(|b| **b == 0).count();
    if significant < MIN_RSA_MODULUS_BYTES {
        return Err("the RSA key is shorter than 2048 bits");
    }
    Ok(())
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(count);
        (len_bytes.iter().fold(0usize, |len, b| (len << 8) | usize::from(*b)), rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

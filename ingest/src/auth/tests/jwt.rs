//! JWT bearer token tests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{
    authenticator, headers, partner, partners, AUDIENCE, HS_ISSUER, HS_SECRET, NOW, RS_ISSUER, RS_PRIVATE_PEM,
    RS_PUBLIC_PEM,
};
use crate::auth::{
    AuthConfigError, AuthError, AuthMethod, Authenticator, Identity, JwtConfig, JwtKey, PartnerAuthConfig,
};

fn claims(issuer: &str) -> Value {
    json!({ "iss": issuer, "aud": AUDIENCE, "sub": "svc-orders", "iat": NOW, "exp": NOW + 600 })
}

fn hs256(claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(HS_SECRET.as_bytes())).expect("sign HS256")
}

fn rs256(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(RS_PRIVATE_PEM.as_bytes()).expect("private key fixture");
    encode(&Header::new(Algorithm::RS256), claims, &key).expect("sign RS256")
}

fn with_claim(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without_claim(mut claims: Value, name: &str) -> Value {
    if let Some(map) = claims.as_object_mut() {
        map.remove(name);
    }
    claims
}

fn bearer(token: &str) -> Result<Identity, AuthError> {
    bearer_at(token, NOW)
}

fn bearer_at(token: &str, now: i64) -> Result<Identity, AuthError> {
    authenticator().authenticate(&headers(&[("authorization", &format!("Bearer {token}"))]), b"{}", now)
}

fn refused(token: &str, reason: &'static str) {
    let err = bearer(token).expect_err(reason);
    assert_eq!(err, AuthError::InvalidToken { reason }, "expected {reason}");
    assert_eq!(err.problem_type(), "invalid-token");
    assert!(!err.to_string().contains(token));
}

#[test]
fn hs256_token_authenticates_with_subject() {
    let want = Identity { partner: "globex".into(), method: AuthMethod::Jwt, subject: Some("svc-orders".into()) };
    assert_eq!(bearer(&hs256(&claims(HS_ISSUER))), Ok(want));
}

#[test]
fn rs256_token_authenticates() {
    let got = bearer(&rs256(&claims(RS_ISSUER))).expect("valid RS256");
    assert_eq!(got.partner, "initech");
    assert_eq!(got.method, AuthMethod::Jwt);
}

#[test]
fn expired_token_is_refused_after_the_leeway() {
    let token = hs256(&with_claim(claims(HS_ISSUER), "exp", json!(NOW - 31)));
    assert_eq!(bearer(&token), Err(AuthError::TokenExpired));
    assert_eq!(AuthError::TokenExpired.problem_type(), "token-expired");
    let within_leeway = hs256(&with_claim(claims(HS_ISSUER), "exp", json!(NOW - 29)));
    assert!(bearer(&within_leeway).is_ok());
    // The injected clock decides, not the system clock: the same token is fine earlier.
    assert!(bearer_at(&token, NOW - 600).is_ok());
}

#[test]
fn token_without_exp_is_refused() {
    refused(&hs256(&without_claim(claims(HS_ISSUER), "exp")), "missing required claim");
}

#[test]
fn not_yet_valid_token_is_refused() {
    refused(&hs256(&with_claim(claims(HS_ISSUER), "nbf", json!(NOW + 60))), "not yet valid");
    assert!(bearer(&hs256(&with_claim(claims(HS_ISSUER), "nbf", json!(NOW + 20)))).is_ok());
}

#[test]
fn wrong_or_missing_audience_is_refused() {
    refused(&hs256(&with_claim(claims(HS_ISSUER), "aud", json!("someone-else"))), "wrong audience");
    refused(&hs256(&without_claim(claims(HS_ISSUER), "aud")), "missing required claim");
    assert!(bearer(&hs256(&with_claim(claims(HS_ISSUER), "aud", json!(["other", AUDIENCE])))).is_ok());
}

#[test]
fn unknown_or_missing_issuer_is_refused() {
    refused(&hs256(&claims("https://evil.example")), "unknown issuer");
    refused(&hs256(&without_claim(claims(HS_ISSUER), "iss")), "unknown issuer");
}

#[test]
fn tampered_token_is_refused() {
    let token = hs256(&claims(HS_ISSUER));
    let (message, signature) = token.rsplit_once('.').expect("three parts");
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    refused(&format!("{message}.{flipped}{}", &signature[1..]), "bad signature");
    // Same signature over a payload claiming another subject.
    let other = hs256(&with_claim(claims(HS_ISSUER), "sub", json!("admin")));
    let other_payload = other.split('.').nth(1).expect("payload");
    let header = token.split('.').next().expect("header");
    refused(&format!("{header}.{other_payload}.{signature}"), "bad signature");
    // Signed with another secret.
    let forged =
        encode(&Header::new(Algorithm::HS256), &claims(HS_ISSUER), &EncodingKey::from_secret(&[7; 32])).expect("sign");
    refused(&forged, "bad signature");
}

#[test]
fn alg_none_is_refused() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(HS_ISSUER).to_string());
    refused(&format!("{header}.{payload}."), "algorithm not allowed");
}

#[test]
fn algorithm_confusion_is_refused() {
    // HS256 signed with the RS256 partner's public key PEM as the HMAC secret.
    let token =
        encode(&Header::new(Algorithm::HS256), &claims(RS_ISSUER), &EncodingKey::from_secret(RS_PUBLIC_PEM.as_bytes()))
            .expect("sign");
    refused(&token, "algorithm not allowed");
    // An RS256 token for the HS256 partner.
    refused(&rs256(&claims(HS_ISSUER)), "algorithm not allowed");
    // The partner's algorithm family, but not its one algorithm.
    let hs512 =
        encode(&Header::new(Algorithm::HS512), &claims(HS_ISSUER), &EncodingKey::from_secret(HS_SECRET.as_bytes()))
            .expect("sign");
    refused(&hs512, "algorithm not allowed");
}

#[test]
fn malformed_tokens_are_refused() {
    for token in ["abc", "a.b", "a.b.c.d", "!!.??.xx", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln"] {
        let err = bearer(token).expect_err(token);
        assert!(matches!(err, AuthError::InvalidToken { .. }), "{token}: {err:?}");
    }
    refused("abc", "malformed");
}

fn jwt_partner(name: &str, issuer: &str, key: JwtKey) -> PartnerAuthConfig {
    PartnerAuthConfig {
        jwt: Some(JwtConfig { issuer: issuer.into(), audience: AUDIENCE.into(), key }),
        ..partner(name)
    }
}

#[test]
fn same_issuer_for_two_partners_is_a_config_error() {
    let mut configs = partners();
    configs.push(jwt_partner("copycat", HS_ISSUER, JwtKey::Hs256(HS_SECRET.into())));
    assert_eq!(
        Authenticator::new(configs).expect_err("shared issuer"),
        AuthConfigError::DuplicateIssuer {
            partner: "copycat".into(),
            other: "globex".into(),
            issuer: HS_ISSUER.into(),
        }
    );
}

#[test]
fn bad_keys_are_config_errors() {
    let bad_pem = |pem: &str| Authenticator::new(vec![jwt_partner("p", RS_ISSUER, JwtKey::Rs256Pem(pem.into()))]);
    for pem in ["not a pem", RS_PRIVATE_PEM, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"] {
        let err = bad_pem(pem).expect_err("bad PEM");
        assert!(matches!(&err, AuthConfigError::BadPem { partner, .. } if partner == "p"), "{err:?}");
    }
    let short = Authenticator::new(vec![jwt_partner("p", HS_ISSUER, JwtKey::Hs256("short".into()))]);
    assert!(matches!(short, Err(AuthConfigError::InvalidJwt { .. })));
    let no_issuer = Authenticator::new(vec![jwt_partner("p", " ", JwtKey::Hs256(HS_SECRET.into()))]);
    assert!(matches!(no_issuer, Err(AuthConfigError::InvalidJwt { .. })));
}

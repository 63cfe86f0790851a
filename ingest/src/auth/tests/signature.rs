//! Standard Webhooks signature tests.

use std::time::Duration;

use standardwebhooks::Webhook;

use super::{authenticator, headers, partner, NOW, WHSEC_NEW, WHSEC_OLD};
use crate::auth::{AuthConfigError, AuthError, AuthMethod, Authenticator, PartnerAuthConfig};

const BODY: &[u8] = br#"{"order_id":"o-1","total":"12.50"}"#;
const MSG_ID: &str = "msg_2LDGv5QKXdM1wAh7MRRUKu3Rb5c";

fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    Webhook::new(secret).expect("secret").sign(MSG_ID, timestamp, body).expect("sign")
}

fn signed(timestamp: i64, signature: &str, body: &[u8]) -> Result<(), AuthError> {
    let ts = timestamp.to_string();
    let h = headers(&[
        ("x-api-key", "hooli-key"),
        ("webhook-id", MSG_ID),
        ("webhook-timestamp", &ts),
        ("webhook-signature", signature),
    ]);
    authenticator()
        .authenticate(&h, body, NOW)
        .map(|id| assert_eq!((id.partner.as_str(), id.method), ("hooli", AuthMethod::ApiKey)))
}

#[test]
fn valid_signature_passes_with_either_rotated_secret() {
    assert_eq!(signed(NOW, &sign(WHSEC_OLD, NOW, BODY), BODY), Ok(()));
    assert_eq!(signed(NOW, &sign(WHSEC_NEW, NOW, BODY), BODY), Ok(()));
}

#[test]
fn stale_and_future_timestamps_are_refused() {
    let stale = NOW - 300 - 1;
    assert_eq!(signed(stale, &sign(WHSEC_NEW, stale, BODY), BODY), Err(AuthError::SignatureStale));
    let future = NOW + 300 + 1;
    assert_eq!(signed(future, &sign(WHSEC_NEW, future, BODY), BODY), Err(AuthError::SignatureStale));
    assert_eq!(AuthError::SignatureStale.problem_type(), "signature-stale");
    for edge in [NOW - 300, NOW + 300] {
        assert_eq!(signed(edge, &sign(WHSEC_NEW, edge, BODY), BODY), Ok(()), "edge {edge}");
    }
}

#[test]
fn tampered_body_or_timestamp_is_refused() {
    let signature = sign(WHSEC_NEW, NOW, BODY);
    let err = signed(NOW, &signature, br#"{"order_id":"o-1","total":"0.01"}"#).expect_err("tampered");
    assert_eq!(err, AuthError::SignatureInvalid);
    assert_eq!(err.problem_type(), "signature-invalid");
    assert_eq!(signed(NOW - 1, &signature, BODY), Err(AuthError::SignatureInvalid));
    let unknown = sign("whsec_dW5rbm93bi1zZWNyZXQtMTIzNDU2Nzg=", NOW, BODY);
    assert_eq!(signed(NOW, &unknown, BODY), Err(AuthError::SignatureInvalid));
    assert_eq!(signed(NOW, &signature, &[0xff, 0xfe]), Err(AuthError::SignatureInvalid));
}

#[test]
fn several_signatures_pass_when_any_matches() {
    let good = sign(WHSEC_NEW, NOW, BODY);
    let multi = format!("v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= {good} v1a,bm90LWVkMjU1MTk=");
    assert_eq!(signed(NOW, &multi, BODY), Ok(()));
    let none = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=";
    assert_eq!(signed(NOW, none, BODY), Err(AuthError::SignatureInvalid));
    let partial = &good[..8];
    assert_eq!(signed(NOW, partial, BODY), Err(AuthError::SignatureInvalid));
}

#[test]
fn missing_headers_are_refused() {
    let ts = NOW.to_string();
    let signature = sign(WHSEC_NEW, NOW, BODY);
    let all = [("webhook-id", MSG_ID), ("webhook-timestamp", ts.as_str()), ("webhook-signature", signature.as_str())];
    for skip in 0..all.len() {
        let mut pairs = vec![("x-api-key", "hooli-key")];
        pairs.extend(all.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, p)| *p));
        let err = authenticator().authenticate(&headers(&pairs), BODY, NOW).expect_err("missing header");
        assert_eq!(err, AuthError::SignatureMissing, "without {}", all[skip].0);
    }
}

#[test]
fn partners_without_secrets_need_no_signature() {
    assert!(authenticator().authenticate(&headers(&[("x-api-key", "acme-key-old")]), BODY, NOW).is_ok());
}

#[test]
fn matches_the_standardwebhooks_test_vector() {
    // From the standardwebhooks crate's own `test_sign`.
    let vector = PartnerAuthConfig {
        api_keys: vec!["k".into()],
        webhook_secrets: vec!["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into()],
        ..partner("vector")
    };
    let auth = Authenticator::new(vec![vector]).expect("valid");
    let h = headers(&[
        ("x-api-key", "k"),
        ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
        ("webhook-timestamp", "1649367553"),
        ("webhook-signature", "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="),
    ]);
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    assert!(auth.authenticate(&h, body, 1_649_367_553).is_ok());
    assert_eq!(auth.authenticate(&h, body, 1_649_367_553 + 301), Err(AuthError::SignatureStale));
}

#[test]
fn tolerance_comes_from_the_config() {
    let strict = PartnerAuthConfig {
        api_keys: vec!["k".into()],
        webhook_secrets: vec![WHSEC_NEW.into()],
        webhook_tolerance: Duration::from_secs(10),
        ..partner("strict")
    };
    let auth = Authenticator::new(vec![strict]).expect("valid");
    let at = |ts: i64| {
        let ts_text = ts.to_string();
        let signature = sign(WHSEC_NEW, ts, BODY);
        let h = headers(&[
            ("x-api-key", "k"),
            ("webhook-id", MSG_ID),
            ("webhook-timestamp", &ts_text),
            ("webhook-signature", &signature),
        ]);
        auth.authenticate(&h, BODY, NOW).map(|_| ())
    };
    assert_eq!(at(NOW - 10), Ok(()));
    assert_eq!(at(NOW - 11), Err(AuthError::SignatureStale));
}

#[test]
fn bad_secrets_are_config_errors() {
    for secret in ["C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "whsec_not base64!", "whsec_"] {
        let config =
            PartnerAuthConfig { api_keys: vec!["k".into()], webhook_secrets: vec![secret.into()], ..partner("p") };
        let err = Authenticator::new(vec![config]).expect_err(secret);
        assert!(matches!(&err, AuthConfigError::BadWebhookSecret { partner, .. } if partner == "p"), "{err:?}");
        assert!(!err.to_string().contains("C2FVsBQ"));
    }
}

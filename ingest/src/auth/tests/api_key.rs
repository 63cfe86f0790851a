//! API key tests.

use super::{authenticator, headers, partner, partners, NOW};
use crate::auth::{AuthConfigError, AuthError, AuthMethod, Authenticator, Identity, PartnerAuthConfig};

fn acme() -> Identity {
    Identity { partner: "acme".into(), method: AuthMethod::ApiKey, subject: None }
}

#[test]
fn x_api_key_header_authenticates() {
    let got = authenticator().authenticate(&headers(&[("x-api-key", "acme-key-old")]), b"{}", NOW);
    assert_eq!(got, Ok(acme()));
}

#[test]
fn authorization_api_key_scheme_authenticates_rotated_key() {
    let got = authenticator().authenticate(&headers(&[("authorization", "ApiKey acme-key-new")]), b"{}", NOW);
    assert_eq!(got, Ok(acme()));
    let lower = authenticator().authenticate(&headers(&[("authorization", "apikey  acme-key-new ")]), b"{}", NOW);
    assert_eq!(lower, Ok(acme()));
}

#[test]
fn wrong_key_is_refused_without_echoing_it() {
    let err = authenticator()
        .authenticate(&headers(&[("x-api-key", "acme-key-guess")]), b"{}", NOW)
        .expect_err("unknown key");
    assert_eq!(err, AuthError::InvalidApiKey);
    assert_eq!(err.problem_type(), "invalid-api-key");
    assert_eq!(err.status(), 401);
    assert!(!err.to_string().contains("acme-key-guess"));
}

#[test]
fn missing_credentials_are_refused() {
    let err = authenticator().authenticate(&headers(&[]), b"{}", NOW).expect_err("no credentials");
    assert_eq!(err, AuthError::MissingCredentials);
    assert_eq!(err.problem_type(), "missing-credentials");
}

#[test]
fn malformed_credentials_are_refused() {
    let auth = authenticator();
    for pairs in [
        &[("x-api-key", "")][..],
        &[("authorization", "Basic YWNtZTpzZWNyZXQ=")][..],
        &[("authorization", "ApiKey")][..],
        &[("x-api-key", "acme-key-old"), ("x-api-key", "acme-key-new")][..],
    ] {
        let err = auth.authenticate(&headers(pairs), b"{}", NOW).expect_err("malformed");
        assert!(matches!(err, AuthError::MalformedCredentials(_)), "{pairs:?}: {err:?}");
    }
}

#[test]
fn authorization_header_wins_over_x_api_key() {
    let both = headers(&[("authorization", "Bearer not.a.token"), ("x-api-key", "acme-key-old")]);
    let err = authenticator().authenticate(&both, b"{}", NOW).expect_err("bearer is checked");
    assert!(matches!(err, AuthError::InvalidToken { .. }), "{err:?}");
}

#[test]
fn same_key_for_two_partners_is_a_config_error() {
    let mut configs = partners();
    configs.push(PartnerAuthConfig { api_keys: vec!["acme-key-new".into()], ..partner("copycat") });
    let err = Authenticator::new(configs).expect_err("shared key");
    assert_eq!(err, AuthConfigError::DuplicateApiKey { partner: "copycat".into(), other: "acme".into() });
    assert!(!err.to_string().contains("acme-key-new"));
}

#[test]
fn same_key_twice_for_one_partner_is_kept_once() {
    let twice = PartnerAuthConfig { api_keys: vec!["k-1".into(), "k-1".into()], ..partner("solo") };
    let auth = Authenticator::new(vec![twice]).expect("a repeated key is harmless");
    assert!(auth.authenticate(&headers(&[("x-api-key", "k-1")]), b"", NOW).is_ok());
}

#[test]
fn other_config_errors_name_the_partner() {
    let empty = PartnerAuthConfig { api_keys: vec![" ".into()], ..partner("blank") };
    assert_eq!(
        Authenticator::new(vec![empty]).expect_err("empty"),
        AuthConfigError::EmptyApiKey { partner: "blank".into() }
    );
    assert_eq!(
        Authenticator::new(vec![partner("mute")]).expect_err("none"),
        AuthConfigError::NoCredentials { partner: "mute".into() }
    );
    let mut configs = partners();
    configs.push(PartnerAuthConfig { api_keys: vec!["x".into()], ..partner("acme") });
    assert_eq!(
        Authenticator::new(configs).expect_err("dup"),
        AuthConfigError::DuplicatePartner { partner: "acme".into() }
    );
}

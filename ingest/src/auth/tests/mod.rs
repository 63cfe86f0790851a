//! Tests of partner authentication, with a fixed clock and fixed partners.

mod api_key;
mod jwt;
mod signature;

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{Authenticator, JwtConfig, JwtKey, PartnerAuthConfig};

/// The injected "now", unix seconds.
const NOW: i64 = 1_700_000_000;
const HS_SECRET: &str = "globex-shared-secret-0123456789abcdef";
const HS_ISSUER: &str = "https://globex.example";
const RS_ISSUER: &str = "https://initech.example";
const AUDIENCE: &str = "interchange";
const RS_PRIVATE_PEM: &str = include_str!("../../../tests/fixtures/jwt-rs256-private.pem");
const RS_PUBLIC_PEM: &str = include_str!("../../../tests/fixtures/jwt-rs256-public.pem");
const WHSEC_OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WHSEC_NEW: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn partner(name: &str) -> PartnerAuthConfig {
    PartnerAuthConfig {
        partner: name.to_owned(),
        api_keys: Vec::new(),
        jwt: None,
        webhook_secrets: Vec::new(),
        webhook_tolerance: Duration::from_secs(300),
    }
}

/// acme: two API keys; globex: HS256; initech: RS256; hooli: an API key and signed webhooks.
fn partners() -> Vec<PartnerAuthConfig> {
    let acme = PartnerAuthConfig { api_keys: vec!["acme-key-old".into(), "acme-key-new".into()], ..partner("acme") };
    let globex = PartnerAuthConfig {
        jwt: Some(JwtConfig {
            issuer: HS_ISSUER.into(),
            audience: AUDIENCE.into(),
            key: JwtKey::Hs256(HS_SECRET.into()),
        }),
        ..partner("globex")
    };
    let initech = PartnerAuthConfig {
        jwt: Some(JwtConfig {
            issuer: RS_ISSUER.into(),
            audience: AUDIENCE.into(),
            key: JwtKey::Rs256Pem(RS_PUBLIC_PEM.into()),
        }),
        ..partner("initech")
    };
    let hooli = PartnerAuthConfig {
        api_keys: vec!["hooli-key".into()],
        webhook_secrets: vec![WHSEC_OLD.into(), WHSEC_NEW.into()],
        ..partner("hooli")
    };
    vec![acme, globex, initech, hooli]
}

fn authenticator() -> Authenticator {
    Authenticator::new(partners()).expect("test partners are valid")
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

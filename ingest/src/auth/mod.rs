//! Partner authentication at the edge: API keys, JWT bearer tokens, Standard Webhooks signatures.
//!
//! [`Authenticator::new`] checks every partner's credentials once at start-up;
//! [`Authenticator::authenticate`] then names the partner behind a request, or says why not.
//!
//! Credentials, in order of precedence:
//! - `Authorization: Bearer <token>`: a JWT, matched to a partner by its `iss` claim.
//! - `Authorization: ApiKey <key>`: an API key.
//! - `X-Api-Key: <key>`: an API key, read only when there is no `Authorization` header.
//!
//! When both an `Authorization` header and `X-Api-Key` are sent, the `Authorization` header wins
//! and `X-Api-Key` is ignored. A partner with webhook secrets must in addition sign every
//! request the Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

mod api_key;
mod jwt;
mod signature;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::HeaderMap;

use self::api_key::ApiKeys;
use self::jwt::Issuers;
pub(crate) use self::signature::SignedMessage;
use self::signature::WebhookVerifier;

/// How one partner authenticates; secrets already resolved.
#[derive(Clone)]
pub struct PartnerAuthConfig {
    pub partner: String,
    /// Plaintext keys, several for rotation; only their SHA-256 digests are kept.
    pub api_keys: Vec<String>,
    pub jwt: Option<JwtConfig>,
    /// `whsec_<base64>` Standard Webhooks secrets, several for rotation; empty means the
    /// partner's requests need no signature.
    pub webhook_secrets: Vec<String>,
    /// How far `webhook-timestamp` may be from now, either way.
    pub webhook_tolerance: Duration,
}

/// JWT bearer tokens a partner may present.
#[derive(Clone)]
pub struct JwtConfig {
    /// The `iss` claim that identifies the partner; unique across partners.
    pub issuer: String,
    /// The `aud` claim the token must carry.
    pub audience: String,
    pub key: JwtKey,
}

/// The partner's one signing algorithm and the key that verifies it.
#[derive(Clone)]
pub enum JwtKey {
    /// HS256 with this shared secret (at least 32 bytes, RFC 7518 section 3.2).
    Hs256(String),
    /// RS256 with this RSA public key (PEM, `PUBLIC KEY` or `RSA PUBLIC KEY`, at least 2048 bits).
    Rs256Pem(String),
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub partner: String,
    pub method: AuthMethod,
    /// The JWT `sub` claim, when authenticated by a token that has one.
    pub subject: Option<String>,
}

/// Which credential authenticated the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ApiKey,
    Jwt,
}

/// A partner's authentication settings that cannot work. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error("partner {partner} is configured twice")]
    DuplicatePartner { partner: String },
    #[error("partner {partner} has neither API keys nor a JWT issuer to authenticate with")]
    NoCredentials { partner: String },
    #[error("partner {partner} has an empty API key")]
    EmptyApiKey { partner: String },
    #[error("partner {partner} uses an API key that partner {other} uses too")]
    DuplicateApiKey { partner: String, other: String },
    #[error("partners {other} and {partner} both use the JWT issuer {issuer:?}")]
    DuplicateIssuer { partner: String, other: String, issuer: String },
    #[error("partner {partner} has an unusable JWT setting: {reason}")]
    InvalidJwt { partner: String, reason: &'static str },
    #[error("partner {partner} has a bad RS256 public key PEM: {reason}")]
    BadPem { partner: String, reason: &'static str },
    #[error("partner {partner} has a bad webhook secret: {reason}")]
    BadWebhookSecret { partner: String, reason: &'static str },
}

/// Why a request is not authenticated. Messages are safe to show the caller: they never
/// contain a key, a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no credentials: send `Authorization: Bearer <token>`, `Authorization: ApiKey <key>` or `X-Api-Key: <key>`"
    )]
    MissingCredentials,
    #[error("malformed credentials: {0}")]
    MalformedCredentials(&'static str),
    #[error("the API key is not valid")]
    InvalidApiKey,
    #[error("the bearer token has expired")]
    TokenExpired,
    #[error("the bearer token is not valid: {reason}")]
    InvalidToken { reason: &'static str },
    #[error("the request must be signed: headers webhook-id, webhook-timestamp and webhook-signature are required")]
    SignatureMissing,
    #[error("the webhook signature does not match")]
    SignatureInvalid,
    #[error("the webhook timestamp is outside the accepted window")]
    SignatureStale,
}

impl AuthError {
    /// A short slug for a problem-details `type`.
    pub(crate) fn problem_type(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing-credentials",
            Self::MalformedCredentials(_) => "malformed-credentials",
            Self::InvalidApiKey => "invalid-api-key",
            Self::TokenExpired => "token-expired",
            Self::InvalidToken { .. } => "invalid-token",
            Self::SignatureMissing => "signature-missing",
            Self::SignatureInvalid => "signature-invalid",
            Self::SignatureStale => "signature-stale",
        }
    }

    /// The HTTP status to answer with: 401 for every credential problem.
    pub(crate) fn status(&self) -> u16 {
        401
    }
}

struct Partner {
    name: String,
    webhooks: Option<WebhookVerifier>,
}

/// Authenticates requests against every partner's credentials.
pub struct Authenticator {
    partners: Vec<Partner>,
    api_keys: ApiKeys,
    issuers: Issuers,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("partners", &self.partners.iter().map(|p| p.name.as_str()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Checks and indexes every partner's credentials; the first problem found is returned.
    pub fn new(partners: Vec<PartnerAuthConfig>) -> Result<Self, AuthConfigError> {
        let mut names: Vec<String> = Vec::with_capacity(partners.len());
        for config in &partners {
            if names.contains(&config.partner) {
                return Err(AuthConfigError::DuplicatePartner { partner: config.partner.clone() });
            }
            names.push(config.partner.clone());
        }
        let mut api_keys = ApiKeys::default();
        let mut issuers = Issuers::default();
        let mut built = Vec::with_capacity(partners.len());
        for (index, config) in partners.into_iter().enumerate() {
            let partner = config.partner;
            if config.api_keys.is_empty() && config.jwt.is_none() {
                return Err(AuthConfigError::NoCredentials { partner });
            }
            for key in &config.api_keys {
                api_keys.insert(key, index, &names)?;
            }
            if let Some(jwt) = &config.jwt {
                issuers.insert(jwt, index, &names)?;
            }
            let webhooks = WebhookVerifier::new(&config.webhook_secrets, config.webhook_tolerance)
                .map_err(|reason| AuthConfigError::BadWebhookSecret { partner: partner.clone(), reason })?;
            built.push(Partner { name: partner, webhooks });
        }
        Ok(Self { partners: built, api_keys, issuers })
    }

    /// Names the partner behind a request, checking its webhook signature when the partner
    /// signs. `now_unix` is the current time in unix seconds; nothing here reads the clock.
    /// The edge itself calls [`Self::identify`] before reading the body and
    /// [`Self::verify_signature`] after; this is both at once.
    pub fn authenticate(&self, headers: &HeaderMap, body: &[u8], now_unix: i64) -> Result<Identity, AuthError> {
        let identity = self.identify(headers, now_unix)?;
        self.verify_signature(&identity, headers, body, now_unix)?;
        Ok(identity)
    }

    /// Checks the Standard Webhooks signature of `body` when `identity`'s partner signs its
    /// requests: `None` when it does not, the verified message otherwise.
    pub(crate) fn verify_signature(
        &self,
        identity: &Identity,
        headers: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Option<SignedMessage>, AuthError> {
        let partner = self.partners.iter().find(|p| p.name == identity.partner);
        match partner.and_then(|p| p.webhooks.as_ref()) {
            None => Ok(None),
            Some(webhooks) => webhooks.verify(headers, body, now_unix).map(Some),
        }
    }

    /// The partner behind the request's credential (API key or JWT) alone, from the headers:
    /// the edge calls it before reading any body, and for reads, which have no body to sign.
    pub(crate) fn identify(&self, headers: &HeaderMap, now_unix: i64) -> Result<Identity, AuthError> {
        self.credential_identity(headers, now_unix).map(|(identity, _)| identity)
    }

    fn credential_identity(&self, headers: &HeaderMap, now_unix: i64) -> Result<(Identity, usize), AuthError> {
        let (index, method, subject) = match credential(headers)? {
            Credential::Bearer(token) => {
                let (index, subject) = self.issuers.verify(token, now_unix)?;
                (index, AuthMethod::Jwt, subject)
            }
            Credential::ApiKey(key) => (self.api_keys.lookup(key)?, AuthMethod::ApiKey, None),
        };
        let partner = self.partners.get(index).ok_or(AuthError::InvalidApiKey)?;
        Ok((Identity { partner: partner.name.clone(), method, subject }, index))
    }
}

enum Credential<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
}

/// Reads the request's credential; `Authorization` wins over `X-Api-Key`.
fn credential(headers: &HeaderMap) -> Result<Credential<'_>, AuthError> {
    if let Some(value) = single_header(headers, AUTHORIZATION.as_str())? {
        let (scheme, rest) = value.split_once(' ').ok_or(AuthError::MalformedCredentials(
            "the Authorization header must be `Bearer <token>` or `ApiKey <key>`",
        ))?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(AuthError::MalformedCredentials("the Authorization header has an empty credential"));
        }
        return if scheme.eq_ignore_ascii_case("bearer") {
            Ok(Credential::Bearer(rest))
        } else if scheme.eq_ignore_ascii_case("apikey") {
            Ok(Credential::ApiKey(rest))
        } else {
            Err(AuthError::MalformedCredentials("the Authorization header must be `Bearer <token>` or `ApiKey <key>`"))
        };
    }
    match single_header(headers, "x-api-key")? {
        Some(key) if !key.is_empty() => Ok(Credential::ApiKey(key)),
        Some(_) => Err(AuthError::MalformedCredentials("the X-Api-Key header is empty")),
        None => Err(AuthError::MissingCredentials),
    }
}

/// The header's one value, trimmed; more than one value or a non-ASCII value is malformed.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(AuthError::MalformedCredentials("a credential header is sent more than once"));
    }
    let value =
        first.to_str().map_err(|_| AuthError::MalformedCredentials("a credential header is not visible ASCII"))?;
    Ok(Some(value.trim()))
}

/// The name of the partner at `index`, for configuration errors.
fn partner_name(names: &[String], index: usize) -> String {
    names.get(index).cloned().unwrap_or_default()
}

//! Whose an order is and which event a request is: correlation ids scoped per partner, and ids
//! derived from (partner, route, Idempotency-Key) so that a retry is the same event.
//!
//! A correlation id a partner supplies is only unique among that partner's own ids, so the edge
//! keys the order `<partner>:<supplied id>`: two partners choosing the same id get two orders.
//! An id that already carries the caller's own scope is kept as it is (scoping is idempotent),
//! so a partner may send back the id the edge answered with.
//!
//! With an Idempotency-Key, the event id (and, without X-Correlation-Id, the correlation id) is
//! a UUIDv5 of the partner, the route, the key and the body's SHA-256: a retry after any failure
//! of the bookkeeping in Redis (the answer not recorded, the client gone, the drain deadline)
//! produces the same event under the same key, which the order processor ignores as already
//! applied. The body is part of it so that a key reused for another order once Redis has
//! forgotten it (after `--idempotency-ttl`) names a new order rather than being ignored as the
//! old one; while Redis remembers the key, another body is refused anyway (422).

use uuid::Uuid;

use crate::idempotency::fingerprint;

/// Separates the partner from the id it supplied in a scoped correlation id.
pub(crate) const SCOPE_SEPARATOR: char = ':';

/// Namespace of every id the edge derives (a fixed, random UUID; never change it: ids derived
/// before and after must match).
const NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3c2e_9d4a_4e57_8f0b_2a61_c7d3_e915);

/// The correlation id a supplied id stands for: `<partner>:<supplied>`, or `supplied` itself
/// when it already starts with `<partner>:`.
pub(crate) fn scope(partner: &str, supplied: &str) -> String {
    if is_scoped_to(partner, supplied) {
        supplied.to_owned()
    } else {
        format!("{partner}{SCOPE_SEPARATOR}{supplied}")
    }
}

/// Whether `id` is in `partner`'s scope (`<partner>:` and at least one more character).
pub(crate) fn is_scoped_to(partner: &str, id: &str) -> bool {
    unscoped(partner, id).is_some()
}

/// The part a partner supplied of an id in its scope, or `None` when `id` is not in it.
pub(crate) fn unscoped<'a>(partner: &str, id: &'a str) -> Option<&'a str> {
    id.strip_prefix(partner).and_then(|rest| rest.strip_prefix(SCOPE_SEPARATOR)).filter(|rest| !rest.is_empty())
}

/// The ids the status API tries, in order, for `id` asked by `partner`: the id as the partner
/// supplied it, scoped (`<partner>:<id>`), then `id` as it is (ids the edge generated and keys
/// upstream producers chose). An id already in the partner's scope is tried as it is first.
pub(crate) fn candidates(partner: &str, id: &str) -> Vec<String> {
    let scoped = format!("{partner}{SCOPE_SEPARATOR}{id}");
    if is_scoped_to(partner, id) {
        vec![id.to_owned(), scoped]
    } else {
        vec![scoped, id.to_owned()]
    }
}

/// The correlation id of a request of `partner` on `route` with `body`: the id it supplied,
/// scoped; else, with an Idempotency-Key, derived from it; else a new UUIDv7.
pub(crate) fn correlation(
    partner: &str,
    route: &str,
    supplied: Option<&str>,
    key: Option<&str>,
    body: &[u8],
) -> String {
    match (supplied, key) {
        (Some(supplied), _) => scope(partner, supplied),
        (None, Some(key)) => correlation_id(partner, route, key, body),
        (None, None) => Uuid::now_v7().to_string(),
    }
}

/// The event id of a request of `partner` on `route` with `body`: derived from its
/// Idempotency-Key, else a new UUIDv4.
pub(crate) fn event(partner: &str, route: &str, key: Option<&str>, body: &[u8]) -> String {
    key.map_or_else(|| Uuid::new_v4().to_string(), |key| event_id(partner, route, key, body))
}

fn derive(parts: &[&str]) -> Uuid {
    // NUL cannot occur in a partner name, a route path or an Idempotency-Key (visible ASCII),
    // so the joined name is unambiguous.
    Uuid::new_v5(&NAMESPACE, parts.join("\0").as_bytes())
}

/// The event id of the request `partner` posted to `route` with Idempotency-Key `key` and `body`.
pub(crate) fn event_id(partner: &str, route: &str, key: &str, body: &[u8]) -> String {
    derive(&[partner, route, key, &fingerprint(route, body), "event"]).to_string()
}

/// The correlation id of that request when it carries no X-Correlation-Id.
pub(crate) fn correlation_id(partner: &str, route: &str, key: &str, body: &[u8]) -> String {
    derive(&[partner, route, key, &fingerprint(route, body), "correlation"]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &[u8] = br#"{"order_id":"A-1"}"#;

    #[test]
    fn derived_ids_are_stable_uuids() {
        let a = event_id("acme-shop", "/api/v1/orders", "key-1", B);
        assert_eq!(a, event_id("acme-shop", "/api/v1/orders", "key-1", B), "the same request, the same event");
        let parsed = Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 5);
        let c = correlation_id("acme-shop", "/api/v1/orders", "key-1", B);
        assert_eq!(c, correlation_id("acme-shop", "/api/v1/orders", "key-1", B));
        assert_ne!(a, c, "the event id is not the correlation id");
        // Pinned: a change of the derivation would let a retry across an upgrade through.
        let print = fingerprint("/api/v1/orders", B);
        assert_eq!(a, derive(&["acme-shop", "/api/v1/orders", "key-1", &print, "event"]).to_string());
    }

    #[test]
    fn derived_ids_are_scoped_to_the_partner_and_route() {
        let base = event_id("acme-shop", "/api/v1/orders", "key-1", B);
        assert_ne!(base, event_id("beta-shop", "/api/v1/orders", "key-1", B), "another partner, the same key");
        assert_ne!(base, event_id("acme-shop", "/api/v1/returns", "key-1", B), "another route");
        assert_ne!(base, event_id("acme-shop", "/api/v1/orders", "key-2", B), "another key");
        // A key reused for another order after Redis forgot it: another event, another order.
        assert_ne!(base, event_id("acme-shop", "/api/v1/orders", "key-1", br#"{"order_id":"A-2"}"#), "another body");
        assert_ne!(
            correlation_id("acme-shop", "/api/v1/orders", "key-1", B),
            correlation_id("acme-shop", "/api/v1/orders", "key-1", b"{}")
        );
        // The parts cannot run into each other.
        assert_ne!(event_id("acme", "-shop/x", "k", B), event_id("acme-shop", "/x", "k", B));
        assert_ne!(
            correlation_id("acme-shop", "/api/v1/orders", "key-1", B),
            correlation_id("beta-shop", "/api/v1/orders", "key-1", B)
        );
    }

    #[test]
    fn a_request_without_a_key_gets_new_ids() {
        let route = "/api/v1/orders";
        assert_ne!(event("acme-shop", route, None, B), event("acme-shop", route, None, B));
        assert_ne!(correlation("acme-shop", route, None, None, B), correlation("acme-shop", route, None, None, B));
        assert_eq!(correlation("acme-shop", route, Some("o-1"), Some("k"), B), "acme-shop:o-1", "supplied wins");
        assert_eq!(correlation("acme-shop", route, None, Some("k"), B), correlation_id("acme-shop", route, "k", B));
        assert_eq!(event("acme-shop", route, Some("k"), B), event_id("acme-shop", route, "k", B));
    }

    #[test]
    fn supplied_ids_are_scoped_once() {
        assert_eq!(scope("acme-shop", "order-1"), "acme-shop:order-1");
        assert_eq!(scope("acme-shop", "acme-shop:order-1"), "acme-shop:order-1", "already in the scope");
        assert_eq!(scope("acme-shop", "beta-shop:order-1"), "acme-shop:beta-shop:order-1", "another's scope");
        assert_eq!(scope("acme-shop", "acme-shop"), "acme-shop:acme-shop");
        assert_ne!(scope("acme-shop", "x"), scope("beta-shop", "x"));
        assert_eq!(unscoped("acme-shop", "acme-shop:order-1"), Some("order-1"));
        assert_eq!(unscoped("acme-shop", "beta-shop:order-1"), None);
        assert_eq!(unscoped("acme-shop", "acme-shop:"), None);
    }

    #[test]
    fn the_status_api_tries_the_callers_scope_first() {
        assert_eq!(candidates("acme-shop", "order-1"), ["acme-shop:order-1", "order-1"]);
        assert_eq!(candidates("acme-shop", "acme-shop:order-1"), ["acme-shop:order-1", "acme-shop:acme-shop:order-1"]);
        assert_eq!(candidates("beta-shop", "acme-shop:order-1"), ["beta-shop:acme-shop:order-1", "acme-shop:order-1"]);
    }
}

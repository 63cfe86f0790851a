//! Finding an order by the partner's own order id (`GET /api/v1/orders?order_id=`) against the
//! real local stack: orders posted to the edge go through the processor and the projector into
//! the lookup table; each partner finds its own orders by order id (the same body as by
//! correlation id), never another partner's; an order id used twice is a 409 listing both.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::edge::*;
use common::orders::wait_terminal;
use common::process::publish_inventory;
use common::readmodel::*;
use common::unique_prefix;
use reqwest::StatusCode;
use serde_json::Value;

const ORDERS: &str = "/api/v1/orders";

/// Who asks: acme-shop (API key) or beta-shop (JWT, 5 requests/s).
#[derive(Clone, Copy, Debug)]
enum As {
    Acme,
    Beta,
}

fn authed(who: As, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match who {
        As::Acme => request.header("x-api-key", SHOP_KEY),
        As::Beta => request.bearer_auth(beta_token(300)),
    }
}

/// Sends until the answer is not `429` (beta-shop's limit is shared by its posts and reads).
async fn send(who: As, make: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    loop {
        let response = authed(who, make()).send().await.expect("answer");
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Posts an order (no callback) as `who` with `correlation` and `order_id`.
async fn post(client: &reqwest::Client, edge: &Edge, who: As, correlation: &str, order_id: &str) {
    let mut body = order(order_id);
    body.as_object_mut().expect("object").remove("callback_url");
    let body = serde_json::to_vec(&body).expect("json");
    let response = send(who, || {
        let mut request = client.post(edge.url(ORDERS)).header("x-correlation-id", correlation).body(body.clone());
        if let As::Acme = who {
            for (name, value) in signature_headers(&body, now_unix()) {
                request = request.header(name, value);
            }
        }
        request
    })
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{correlation}");
}

/// `/api/v1/orders?order_id=<order_id, percent-encoded byte by byte>`.
fn lookup_url(edge: &Edge, order_id: &str) -> String {
    let encoded: String = order_id
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    edge.url(&format!("{ORDERS}?order_id={encoded}"))
}

/// `GET /api/v1/orders?order_id=` as `who`.
async fn by_order_id(client: &reqwest::Client, edge: &Edge, who: As, order_id: &str) -> reqwest::Response {
    send(who, || client.get(lookup_url(edge, order_id))).await
}

/// The body of `GET /api/v1/orders/{id}` as `who` once the order is `COMPLETED` there.
async fn completed(client: &reqwest::Client, edge: &Edge, who: As, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let response = send(who, || client.get(edge.url(&format!("{ORDERS}/{id}")))).await;
        if response.status() == StatusCode::OK {
            let body: Value = response.json().await.expect("json");
            if body["status"] == "COMPLETED" {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "{id} never COMPLETED in the read model");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn problem(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/problem+json", "{status}");
    (status, response.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_partner_finds_its_own_orders_by_order_id_and_only_its_own() {
    let prefix = unique_prefix("lookup");
    let keyspace = unique_keyspace("lookup");
    let topology = topology_with_partner(&keyspace).await;
    provision(&topology, &prefix);
    migrate(&topology, &prefix);
    let skus: Vec<String> = (100..106).map(|i| format!("SKU-{i:05}")).collect();
    let levels: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 1_000_000)).collect();
    publish_inventory(&format!("{prefix}inventory.levels"), &levels).await;
    let (hub, edge) = hub_run_ready(&topology, &prefix);
    let client = reqwest::Client::new();

    // acme-shop: three orders with their own ids (one needing escaping in a URL), one order id
    // that beta-shop uses too, and one order id used for two orders.
    let acme: Vec<(String, String)> = [("a-0", "OL-0"), ("a-1", "OL-1"), ("a-2", "OL 2/ä?&=#")]
        .map(|(c, o)| (format!("{prefix}{c}"), o.to_owned()))
        .into();
    for (correlation, order_id) in &acme {
        post(&client, &edge, As::Acme, correlation, order_id).await;
    }
    let (acme_same, beta_same) = (format!("{prefix}acme-same"), format!("{prefix}beta-same"));
    post(&client, &edge, As::Acme, &acme_same, "SAME-1").await;
    post(&client, &edge, As::Beta, &beta_same, "SAME-1").await;
    let dups = [format!("{prefix}dup-a"), format!("{prefix}dup-b")];
    for correlation in &dups {
        post(&client, &edge, As::Acme, correlation, "DUP-1").await;
    }
    // A supplied correlation id is scoped to its partner: the order's key is `<partner>:<id>`.
    let scoped = |partner: &str, id: &str| format!("{partner}:{id}");
    let mut all: Vec<String> = acme.iter().map(|(c, _)| scoped("acme-shop", c)).collect();
    all.extend([
        scoped("acme-shop", &acme_same),
        scoped("beta-shop", &beta_same),
        scoped("acme-shop", &dups[0]),
        scoped("acme-shop", &dups[1]),
    ]);
    wait_terminal(&format!("{prefix}orders.state"), &all, Duration::from_secs(120)).await;

    // Each acme order by its order id: exactly the body of its status by correlation id.
    for (correlation, order_id) in &acme {
        let by_id = completed(&client, &edge, As::Acme, correlation).await;
        let response = by_order_id(&client, &edge, As::Acme, order_id).await;
        assert_eq!(response.status(), StatusCode::OK, "{order_id}");
        assert_eq!(response.headers()["content-location"], format!("{ORDERS}/acme-shop:{correlation}"));
        let etag = response.headers()["etag"].to_str().expect("etag").to_owned();
        assert_eq!(etag, format!("\"v{}\"", by_id["version"]));
        let body: Value = response.json().await.expect("json");
        assert_eq!(body, by_id, "{order_id}: the same body as by correlation id");
        assert_eq!(
            (body["id"].as_str(), body["order_id"].as_str()),
            (Some(scoped("acme-shop", correlation).as_str()), Some(order_id.as_str()))
        );
        assert_eq!(body["partner"], "acme-shop");
        // The same ETag again: 304.
        let again = send(As::Acme, || client.get(lookup_url(&edge, order_id)).header("if-none-match", &etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    // beta-shop asking for acme-shop's order id: 404, as for an order id nobody used.
    let (status, other) = problem(by_order_id(&client, &edge, As::Beta, "OL-0").await).await;
    assert_eq!(
        (status, other["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("https://interchange.dev/problems/order-not-found"))
    );
    let (status, unknown) = problem(by_order_id(&client, &edge, As::Acme, "NEVER-USED").await).await;
    assert_eq!(
        (status, unknown["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("https://interchange.dev/problems/order-not-found"))
    );
    assert_eq!(unknown["detail"], other["detail"], "existence does not leak");

    // The same order id at both partners: each finds its own.
    let acme_body = completed(&client, &edge, As::Acme, &acme_same).await;
    let found: Value = by_order_id(&client, &edge, As::Acme, "SAME-1").await.json().await.expect("json");
    assert_eq!(found, acme_body);
    assert_eq!(
        (found["id"].as_str(), found["partner"].as_str()),
        (Some(scoped("acme-shop", &acme_same).as_str()), Some("acme-shop"))
    );
    let beta_body = completed(&client, &edge, As::Beta, &beta_same).await;
    let found: Value = by_order_id(&client, &edge, As::Beta, "SAME-1").await.json().await.expect("json");
    assert_eq!(found, beta_body);
    assert_eq!(
        (found["id"].as_str(), found["partner"].as_str()),
        (Some(scoped("beta-shop", &beta_same).as_str()), Some("beta-shop"))
    );

    // An order id acme-shop used for two orders: 409 listing both, each with its status URL.
    for correlation in &dups {
        completed(&client, &edge, As::Acme, correlation).await;
    }
    let (status, ambiguous) = problem(by_order_id(&client, &edge, As::Acme, "DUP-1").await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(ambiguous["type"], "https://interchange.dev/problems/order-id-ambiguous");
    let listed = ambiguous["orders"].as_array().expect("orders");
    assert_eq!(listed.len(), 2, "{ambiguous}");
    let ids: BTreeSet<String> = listed.iter().filter_map(|o| o["id"].as_str().map(str::to_owned)).collect();
    assert_eq!(ids, dups.iter().map(|c| scoped("acme-shop", c)).collect::<BTreeSet<_>>());
    for o in listed {
        assert_eq!(o["status"], "COMPLETED");
        assert_eq!(o["links"]["self"], format!("{ORDERS}/{}", o["id"].as_str().expect("id")));
    }
    assert_eq!(ambiguous["truncated"], false);

    // Bad queries and no credentials.
    let (status, missing) = problem(send(As::Acme, || client.get(edge.url(ORDERS))).await).await;
    assert_eq!(
        (status, missing["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("https://interchange.dev/problems/invalid-query"))
    );
    let anonymous = client.get(lookup_url(&edge, "OL-0")).send().await.expect("answer");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let openapi: Value = client.get(edge.url("/openapi.json")).send().await.expect("doc").json().await.expect("json");
    let get = &openapi["paths"][ORDERS]["get"];
    assert_eq!(get["parameters"][0]["name"], "order_id");
    for status in ["200", "304", "400", "401", "404", "409", "429", "503"] {
        assert!(get["responses"].get(status).is_some(), "{status} documented");
    }
    drop(hub);

    // The table: one row per order, under its own partner, written with its version as timestamp.
    let session = session().await;
    for (correlation, order_id) in &acme {
        let rows = lookup_rows(&session, &keyspace, order_id).await;
        assert_eq!(rows.len(), 1, "{order_id}: {rows:?}");
        assert_eq!((&rows[0].0, rows[0].1.as_str()), (&scoped("acme-shop", correlation), "COMPLETED"));
    }
    assert_eq!(lookup_rows(&session, &keyspace, "DUP-1").await.len(), 2);
    let same: Vec<String> = lookup_rows(&session, &keyspace, "SAME-1").await.into_iter().map(|r| r.0).collect();
    assert_eq!(same, vec![scoped("acme-shop", &acme_same)]);
    let same: Vec<String> =
        lookup_rows_of(&session, &keyspace, "beta-shop", "SAME-1").await.into_iter().map(|r| r.0).collect();
    assert_eq!(same, vec![scoped("beta-shop", &beta_same)]);
    assert!(lookup_rows_of(&session, &keyspace, "beta-shop", "OL-0").await.is_empty());
    drop_keyspace(&session, &keyspace).await;
}

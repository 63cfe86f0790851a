//! The OpenAPI 3.1 document of the edge, generated from the topology's routes and contracts.
//!
//! Routes are data (topology.toml), so the document is built from the same `RouteSpec`s the
//! router is built from, and request bodies are the Avro contracts turned into JSON Schema:
//! it cannot drift from what the edge serves. (utoipa documents handlers fixed at compile time.)

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::order_lookup::MAX_LISTED;
use crate::orders::{DEFAULT_PAGE, MAX_PAGE};
use crate::pipeline::ENVELOPE_FIELDS;
use crate::state::{RouteSpec, ORDER_CONTRACT};

fn problem_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

/// JSON Schema of an Avro type, following named types defined earlier in the document.
fn json_schema(avro: &Value, named: &mut HashMap<String, Value>) -> Value {
    match avro {
        Value::String(name) => match name.as_str() {
            "null" => json!({ "type": "null" }),
            "boolean" => json!({ "type": "boolean" }),
            "int" => json!({ "type": "integer", "format": "int32" }),
            "long" => json!({ "type": "integer", "format": "int64" }),
            "float" | "double" => json!({ "type": "number" }),
            "string" => json!({ "type": "string" }),
            "bytes" => json!({ "type": "string", "contentEncoding": "base64" }),
            other => named.get(other).cloned().unwrap_or_else(|| json!({})),
        },
        Value::Array(branches) => {
            json!({ "anyOf": branches.iter().map(|b| json_schema(b, named)).collect::<Vec<_>>() })
        }
        Value::Object(o) => {
            let doc = o.get("doc").cloned();
            let mut schema = match (o.get("type").and_then(Value::as_str), o.get("logicalType").and_then(Value::as_str))
            {
                (_, Some("decimal")) => {
                    let scale = o.get("scale").and_then(Value::as_u64).unwrap_or(0);
                    let precision = o.get("precision").and_then(Value::as_u64).unwrap_or(0);
                    let fraction =
                        if scale == 0 { "(\\.0+)?".to_owned() } else { format!("(\\.[0-9]{{1,{scale}}}0*)?") };
                    json!({
                        "oneOf": [
                            { "type": "string", "pattern": format!("^-?[0-9]+{fraction}$"), "examples": ["129.90"] },
                            { "type": "integer" }
                        ],
                        "description": format!(
                            "An exact amount: a decimal string with at most {precision} digits, {scale} after the point \
                             (trailing zeros beyond them are dropped), or an integer. A JSON number with a fraction is \
                             refused: it would be read through binary floating point."
                        )
                    })
                }
                (_, Some("timestamp-millis" | "timestamp-micros")) => {
                    json!({ "oneOf": [{ "type": "string", "format": "date-time" }, { "type": "integer", "description": "epoch milliseconds" }] })
                }
                (_, Some("uuid")) => json!({ "type": "string", "format": "uuid" }),
                (Some("record"), _) => record(o, named),
                (Some("enum"), _) => {
                    let symbols = o.get("symbols").cloned().unwrap_or_else(|| json!([]));
                    let schema = json!({ "type": "string", "enum": symbols });
                    if let Some(name) = o.get("name").and_then(Value::as_str) {
                        named.insert(name.to_owned(), schema.clone());
                    }
                    schema
                }
                (Some("array"), _) => {
                    json!({ "type": "array", "items": json_schema(o.get("items").unwrap_or(&Value::Null), named) })
                }
                (Some("map"), _) => {
                    json!({ "type": "object", "additionalProperties": json_schema(o.get("values").unwrap_or(&Value::Null), named) })
                }
                (Some(t), _) => json_schema(&Value::String(t.to_owned()), named),
                (None, _) => json!({}),
            };
            if let (Some(doc), Value::Object(s)) = (doc, &mut schema) {
                s.entry("description").or_insert(doc);
            }
            schema
        }
        _ => json!({}),
    }
}

fn record(o: &Map<String, Value>, named: &mut HashMap<String, Value>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in o.get("fields").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = field.get("name").and_then(Value::as_str) else { continue };
        if ENVELOPE_FIELDS.contains(&name) {
            continue;
        }
        let mut schema = json_schema(field.get("type").unwrap_or(&Value::Null), named);
        if let (Some(doc), Value::Object(s)) = (field.get("doc"), &mut schema) {
            s.insert("description".to_owned(), doc.clone());
        }
        if field.get("default").is_none() {
            required.push(json!(name));
        }
        properties.insert(name.to_owned(), schema);
    }
    let schema =
        json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false });
    if let Some(name) = o.get("name").and_then(Value::as_str) {
        named.insert(name.to_owned(), schema.clone());
    }
    schema
}

/// The statuses every ingest route can answer, with their descriptions.
const ROUTE_STATUSES: [(&str, &str); 10] = [
    ("400", "Malformed JSON, or an invalid X-Correlation-Id or Idempotency-Key"),
    ("401", "Missing or invalid credentials or signature; checked from the headers before the body is read"),
    ("403", "The partner may not use this route"),
    ("408", "The body did not arrive within the edge's body timeout (type body-timeout); not accepted"),
    ("409", "A request with the same Idempotency-Key is in flight (type idempotency-key-in-flight), or the webhook-id was already accepted within its signature window and this is not a retry with the same body and Idempotency-Key (type webhook-replayed)"),
    ("413", "The body is larger than the limit"),
    ("422", "The body breaks the contract, or the Idempotency-Key was used with another body"),
    ("429", "Rate limit exceeded; see Retry-After"),
    ("500", "The event could not be written; it was not accepted"),
    ("503", "Broker, idempotency store or capacity unavailable (type overloaded: the edge's concurrency limit for identified partners); not accepted, see Retry-After"),
];

/// What X-Correlation-Id (and a batch event's `correlation_id`) means.
const CORRELATION_DOC: &str = "Your id for the order, unique among your own: the order is keyed `<partner>:<this id>` \
    (another partner may use the same id for its own order), and the 202 answer, Location and links carry that \
    scoped id. An id already of the form `<your partner name>:<id>` (one the edge answered with) is kept as it \
    is, so the pattern also admits that longer form. Without it the edge names the order: a UUIDv5 derived from \
    the Idempotency-Key when there is one, else a new UUIDv7.";

/// What Idempotency-Key means.
const IDEMPOTENCY_DOC: &str = "Per partner. A repeat with the same body answers the first answer again; the event \
    id (and, without X-Correlation-Id, the correlation id) is derived from partner, route, key and body, so a retry the \
    edge could not recognise (its record of the answer was lost) is the same event and the processor ignores it. \
    A retry must carry the same X-Correlation-Id (or none) to be the same order.";

fn route_paths(route: &RouteSpec, max_batch: usize, paths: &mut Map<String, Value>) {
    let mut named = HashMap::new();
    let body = json_schema(&route.schema_json, &mut named);
    let mut errors = Map::new();
    for (status, description) in ROUTE_STATUSES {
        errors.insert(status.to_owned(), problem_response(description));
    }
    let headers = json!([
        { "name": "X-Correlation-Id", "in": "header", "description": CORRELATION_DOC, "schema": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$" } },
        { "name": "Idempotency-Key", "in": "header", "description": IDEMPOTENCY_DOC, "schema": { "type": "string", "maxLength": 255 } },
        { "name": "traceparent", "in": "header", "schema": { "type": "string" } },
    ]);
    let mut single = errors.clone();
    single.insert("202".to_owned(), json!({
        "description": "Durably written: the broker acknowledged the record (acks=all)",
        "headers": { "Location": { "schema": { "type": "string" } }, "X-Correlation-Id": { "schema": { "type": "string" } }, "X-Event-Id": { "schema": { "type": "string" } } },
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } },
    }));
    paths.insert(
        route.path.clone(),
        json!({ "post": {
            "summary": format!("Submit one {} event", route.contract),
            "operationId": format!("submit_{}", route.contract),
            "security": [{ "apiKey": [] }, { "bearer": [] }],
            "parameters": headers,
            "requestBody": { "required": true, "content": { "application/json": { "schema": body } } },
            "responses": single,
        }}),
    );
    let mut batch = errors;
    batch.insert(
        "200".to_owned(),
        json!({
            "description": "Each event's outcome, in request order",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/BatchResult" } } },
        }),
    );
    paths.insert(format!("{}:batch", route.path), json!({ "post": {
        "summary": format!("Submit up to {max_batch} {} events", route.contract),
        "operationId": format!("submit_{}_batch", route.contract),
        "security": [{ "apiKey": [] }, { "bearer": [] }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": ["events"], "additionalProperties": false,
            "properties": { "events": { "type": "array", "minItems": 1, "maxItems": max_batch, "items": {
                "type": "object", "required": ["data"], "additionalProperties": false,
                "properties": { "idempotency_key": { "type": "string", "maxLength": 255, "description": IDEMPOTENCY_DOC }, "correlation_id": { "type": "string", "description": CORRELATION_DOC }, "data": body },
            }}},
        }}}},
        "responses": batch,
    }}));
}

/// The statuses of the order status API, with their descriptions.
const QUERY_STATUSES: [(&str, &str); 5] = [
    ("401", "Missing or invalid credentials"),
    ("400", "Invalid page limit or cursor"),
    ("404", "No such order for this partner (type order-not-found), or accepted and not projected yet (type accepted-not-yet-projected, see Retry-After)"),
    ("429", "Per-IP or per-partner rate limit exceeded (reads count against the same quota as posting); see Retry-After"),
    ("503", "The read model is not reachable (type read-model-unavailable), or the edge is at its concurrency limit (type overloaded); see Retry-After"),
];

/// `GET <route>?order_id=`, on the route's own path (beside its `post`).
fn lookup_path(route: &RouteSpec, errors: &Map<String, Value>, paths: &mut Map<String, Value>) {
    let mut responses = errors.clone();
    responses.insert("400".to_owned(), problem_response(&format!(
        "order_id missing, repeated, empty or longer than {} bytes, or another query parameter given (type invalid-query)",
        interchange_core::readmodel::MAX_INDEXED_ORDER_ID_BYTES
    )));
    responses.insert("404".to_owned(), problem_response("No order of this partner has this order_id in the read model (type order-not-found); another partner's order ids are not found either"));
    responses.insert("409".to_owned(), json!({
        "description": "This partner used the order_id for several orders (type order-id-ambiguous): they are listed, newest first; read the one meant by its correlation id",
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/OrderIdAmbiguous" } } },
    }));
    responses.insert("200".to_owned(), json!({
        "description": "The order's latest projected state: the same body as GET {id} with its correlation id",
        "headers": {
            "ETag": { "description": "The state version", "schema": { "type": "string" } },
            "Content-Location": { "description": "The order's status URL by correlation id", "schema": { "type": "string" } },
        },
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Order" } } },
    }));
    responses.insert("304".to_owned(), json!({ "description": "Not modified since the ETag given in If-None-Match" }));
    let get = json!({
        "summary": "Find an order this partner submitted by its own order_id",
        "operationId": format!("find_{}_by_order_id", route.contract),
        "security": [{ "apiKey": [] }, { "bearer": [] }],
        "parameters": [
            { "name": "order_id", "in": "query", "required": true, "description": "The order_id field of the order as the partner sent it",
              "schema": { "type": "string", "minLength": 1 } },
            { "name": "If-None-Match", "in": "header", "schema": { "type": "string" } }],
        "responses": responses,
    });
    if let Some(Value::Object(item)) = paths.get_mut(&route.path) {
        item.insert("get".to_owned(), get);
    }
}

/// `GET <route>?order_id=`, `GET <route>/{id}` and `GET <route>/{id}/events` beside an order route.
fn order_paths(route: &RouteSpec, paths: &mut Map<String, Value>) {
    let mut errors = Map::new();
    for (status, description) in QUERY_STATUSES {
        errors.insert(status.to_owned(), problem_response(description));
    }
    lookup_path(route, &errors, paths);
    let id = json!({ "name": "id", "in": "path", "required": true, "description": "The correlation id the 202 answer gave (links.status, `<partner>:<your id>` for an id you supplied), or the X-Correlation-Id you supplied, resolved among your own orders", "schema": { "type": "string" } });
    let mut status = errors.clone();
    status.insert(
        "200".to_owned(),
        json!({
            "description": "The order's latest projected state",
            "headers": { "ETag": { "description": "The state version", "schema": { "type": "string" } } },
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Order" } } },
        }),
    );
    status.insert("304".to_owned(), json!({ "description": "Not modified since the ETag given in If-None-Match" }));
    paths.insert(
        format!("{}/{{id}}", route.path),
        json!({ "get": {
            "summary": "Current status of an order this partner submitted",
            "operationId": format!("get_{}", route.contract),
            "security": [{ "apiKey": [] }, { "bearer": [] }],
            "parameters": [id, { "name": "If-None-Match", "in": "header", "schema": { "type": "string" } }],
            "responses": status,
        }}),
    );
    let mut events = errors;
    events.insert(
        "200".to_owned(),
        json!({
            "description": "A page of the order's transitions, newest first",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/OrderEvents" } } },
        }),
    );
    paths.insert(format!("{}/{{id}}/events", route.path), json!({ "get": {
        "summary": "Timeline of an order this partner submitted, newest first",
        "operationId": format!("get_{}_events", route.contract),
        "security": [{ "apiKey": [] }, { "bearer": [] }],
        "parameters": [id,
            { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE } },
            { "name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": { "type": "string" } }],
        "responses": events,
    }}));
}

fn order_schemas() -> (Value, Value) {
    let text = json!({ "type": ["string", "null"] });
    let time = json!({ "type": ["string", "null"], "format": "date-time" });
    let order = json!({ "type": "object", "required": ["id", "order_id", "partner", "status", "version"], "properties": {
        "id": { "type": "string" }, "order_id": { "type": "string" }, "partner": { "type": "string" },
        "status": { "enum": ["RECEIVED", "VALIDATED", "SENT_TO_PARTNER", "COMPLETED", "REJECTED", "COMPENSATING", "COMPENSATED"] },
        "version": { "type": "integer", "description": "Transitions so far; the ETag" },
        "currency": { "type": "string" }, "subtotal": { "type": "string" }, "discount": { "type": "string" }, "total": { "type": "string" },
        "items": { "type": "array", "items": { "type": "object" } },
        "partner_reference": text, "failure_reason": text, "deadline": time, "created_at": time, "updated_at": time,
        "links": { "type": "object", "properties": { "self": { "type": "string" }, "events": { "type": "string" } } } } });
    let events = json!({ "type": "object", "required": ["id", "events", "next_cursor"], "properties": {
        "id": { "type": "string" },
        "events": { "type": "array", "items": { "type": "object", "properties": {
            "version": { "type": "integer" }, "at": time, "from": { "type": "string" }, "to": { "type": "string" },
            "event_id": { "type": "string" }, "event_type": { "type": "string" }, "detail": text } } },
        "next_cursor": text,
        "links": { "type": "object", "properties": { "next": text, "order": { "type": "string" } } } } });
    (order, events)
}

fn ambiguous_schema() -> Value {
    json!({ "allOf": [{ "$ref": "#/components/schemas/Problem" }, { "type": "object", "required": ["orders", "truncated"], "properties": {
        "orders": { "type": "array", "maxItems": MAX_LISTED, "items": { "type": "object", "required": ["id"], "properties": {
            "id": { "type": "string", "description": "The correlation id" }, "status": { "type": ["string", "null"] },
            "version": { "type": ["integer", "null"] }, "created_at": { "type": ["string", "null"], "format": "date-time" },
            "links": { "type": "object", "properties": { "self": { "type": "string" }, "events": { "type": "string" } } } } } },
        "truncated": { "type": "boolean", "description": "More orders carry this order_id than are listed" } } }] })
}

/// The whole document.
pub(crate) fn document(routes: &[Arc<RouteSpec>], max_batch: usize) -> Value {
    let mut paths = Map::new();
    for route in routes {
        route_paths(route, max_batch, &mut paths);
        if route.contract == ORDER_CONTRACT {
            order_paths(route, &mut paths);
        }
    }
    let (order, order_events) = order_schemas();
    let plain = |description: &str| {
        json!({ "get": { "summary": description, "responses": {
        "200": { "description": "OK" }, "503": problem_response("Not ready") } } })
    };
    paths.insert("/healthz".to_owned(), plain("Liveness"));
    paths.insert("/readyz".to_owned(), plain("Readiness: broker, registry and Redis reachable, not shutting down"));
    paths.insert("/metrics".to_owned(), json!({ "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "OpenMetrics text" } } } }));
    paths.insert(
        "/openapi.json".to_owned(),
        json!({ "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } }),
    );
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Interchange ingest edge", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Partners post events; 202 means the broker acknowledged the record." },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-Api-Key" },
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
            "schemas": {
                "Problem": { "type": "object", "description": "RFC 9457 problem details", "required": ["type", "title", "status", "detail"], "properties": {
                    "type": { "type": "string", "format": "uri" }, "title": { "type": "string" }, "status": { "type": "integer" },
                    "detail": { "type": "string" }, "correlation_id": { "type": "string" },
                    "errors": { "type": "array", "items": { "type": "object", "required": ["pointer", "expected", "detail"], "properties": {
                        "pointer": { "type": "string", "description": "RFC 6901 JSON pointer" }, "expected": { "type": "string" }, "detail": { "type": "string" } } } } } },
                "Accepted": { "type": "object", "required": ["status", "event_id", "correlation_id", "topic", "partition", "offset", "links"], "properties": {
                    "status": { "const": "accepted" }, "event_id": { "type": "string", "format": "uuid" }, "correlation_id": { "type": "string" },
                    "topic": { "type": "string" }, "partition": { "type": "integer" }, "offset": { "type": "integer" },
                    "links": { "type": "object", "properties": { "status": { "type": "string" }, "events": { "type": "string" } } } } },
                "Order": order,
                "OrderIdAmbiguous": ambiguous_schema(),
                "OrderEvents": order_events,
                "BatchResult": { "type": "object", "required": ["accepted", "duplicates", "rejected", "results"], "properties": {
                    "accepted": { "type": "integer" }, "duplicates": { "type": "integer" }, "rejected": { "type": "integer" },
                    "results": { "type": "array", "items": { "type": "object", "required": ["index", "status", "http_status"], "properties": {
                        "index": { "type": "integer" }, "status": { "enum": ["accepted", "duplicate", "rejected"] }, "http_status": { "type": "integer" },
                        "event_id": { "type": "string" }, "correlation_id": { "type": "string" }, "location": { "type": "string" },
                        "problem": { "$ref": "#/components/schemas/Problem" } } } } } },
            },
        },
    })
}

//! Every contract both ways with Confluent's own Python client (confluent-kafka from PyPI, its
//! stock `AvroSerializer` and `AvroDeserializer`): records it writes, the hub reads; records the
//! hub writes, it reads; field values compared exactly, decimals at the edges of their range,
//! timestamps and enums included. Also schema evolution as upstream producers practise it: a newer
//! compatible version registered by the stock client is read into the hub's contract; an unknown
//! or incompatible schema id is refused naming the id.

mod common;

use apache_avro::Schema;
use interchange_core::avro::{DecodeError, Encoder, Reader};
use interchange_core::contract::{avro_to_json, json_to_avro, UnknownFields};
use interchange_core::registry::{Registry, RegistrySettings};
use interchange_core::topology::Topology;
use serde_json::{json, Map, Value as Json};

use common::python::{hex, run_async, unhex};
use common::{registry_url, repo, unique_prefix};

/// How many values each contract is tried with; each picks other edges of every field.
const VARIANTS: usize = 6;

/// A value of `schema` in the hub's JSON shape, picking edge values by `variant`.
fn sample(schema: &Schema, names: &std::collections::HashMap<apache_avro::schema::Name, Schema>, v: usize) -> Json {
    let pick = |options: &[Json]| options[v % options.len()].clone();
    match schema {
        Schema::Ref { name } => sample(&names[name], names, v),
        Schema::Null => Json::Null,
        Schema::Boolean => json!(v.is_multiple_of(2)),
        Schema::Int => pick(&[json!(i32::MIN), json!(i32::MAX), json!(0), json!(1), json!(-1), json!(42)]),
        Schema::Long => {
            pick(&[json!(i64::MIN), json!(i64::MAX), json!(0), json!(1), json!(-1), json!(1_700_000_000_000_i64)])
        }
        Schema::Double => pick(&[json!(0.5), json!(-1.25), json!(1e300), json!(0.0), json!(3.0), json!(-2.5e-300)]),
        Schema::String => pick(&[
            json!(""),
            json!("ünïcødé ✓ 🚀"),
            json!("plain"),
            json!("a/b?c=d&e"),
            json!("x"),
            json!("\"quoted\"\n"),
        ]),
        Schema::Bytes => pick(&[json!(""), json!("AAEC/w=="), json!("aGVsbG8=")]),
        Schema::Uuid(_) => pick(&[
            json!("00000000-0000-0000-0000-000000000000"),
            json!("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            json!("0190d3f4-1111-7000-8000-000000000001"),
        ]),
        Schema::Decimal(d) => {
            let nines = "9".repeat(d.precision - d.scale);
            let fraction = "9".repeat(d.scale);
            let zeros = "0".repeat(d.scale);
            let max = format!("{nines}.{fraction}");
            let tiny = format!("0.{}1", "0".repeat(d.scale.saturating_sub(1)));
            pick(&[
                json!(max),
                json!(format!("-{max}")),
                json!(format!("0.{zeros}")),
                json!(tiny),
                json!(format!("-{tiny}")),
                json!(format!("129.{}", "9".repeat(d.scale))),
            ])
        }
        Schema::TimestampMillis => pick(&[
            json!("1970-01-01T00:00:00.000Z"),
            json!("9999-12-31T23:59:59.999Z"),
            json!("2026-11-30T12:34:56.789Z"),
            json!("1969-12-31T23:59:59.999Z"),
            json!("2000-02-29T00:00:00.001Z"),
            json!("0001-01-01T00:00:00.000Z"),
        ]),
        Schema::Enum(e) => json!(e.symbols[v % e.symbols.len()]),
        Schema::Union(u) => {
            let variants = u.variants();
            let null = variants.iter().position(|s| matches!(s, Schema::Null));
            match null {
                Some(_) if v.is_multiple_of(2) => Json::Null,
                _ => {
                    let other = variants.iter().find(|s| !matches!(s, Schema::Null)).expect("a non-null branch");
                    sample(other, names, v / 2)
                }
            }
        }
        Schema::Array(a) => match v % 3 {
            0 => json!([]),
            _ => json!([sample(&a.items, names, v), sample(&a.items, names, v + 1)]),
        },
        Schema::Map(m) => match v % 3 {
            0 => json!({}),
            _ => json!({"k": sample(&m.types, names, v), "ü-key": sample(&m.types, names, v + 1)}),
        },
        Schema::Record(r) => {
            let fields: Map<String, Json> =
                r.fields.iter().enumerate().map(|(i, f)| (f.name.clone(), sample(&f.schema, names, v + i))).collect();
            Json::Object(fields)
        }
        other => panic!("no sample for {other:?}: add one"),
    }
}

fn names_of(schema: &Schema) -> std::collections::HashMap<apache_avro::schema::Name, Schema> {
    apache_avro::schema::ResolvedSchema::new(schema)
        .expect("resolves")
        .get_names()
        .iter()
        .map(|(n, s)| (n.clone(), (*s).clone()))
        .collect()
}

/// Provisions the contracts under a fresh prefix; the loaded topology.
fn provisioned(test: &str) -> (Topology, String) {
    let prefix = unique_prefix(test);
    let topology_path = repo().join("topology.toml");
    let out = common::hub(&[
        "--topology",
        topology_path.to_str().expect("utf-8"),
        "--topic-prefix",
        &prefix,
        "schemas",
        "register",
    ]);
    assert!(out.status.success(), "schemas register: {:?}", common::text(&out));
    let topology = Topology::load(&topology_path, &prefix).expect("topology loads");
    (topology, prefix)
}

fn registry() -> Registry {
    RegistrySettings::new(&registry_url()).client().expect("registry client")
}

fn reader(topology: &Topology) -> Reader {
    Reader::new(registry(), topology.contracts.values().map(|c| (c.name.clone(), c.schema.clone())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_contract_round_trips_exactly_with_the_stock_confluent_python_serde() {
    let (topology, _prefix) = provisioned("interop");
    let registry = registry();
    let reader = reader(&topology);
    // (topic, contract, record strategy, canonical JSON, the hub's bytes)
    let mut cases = Vec::new();
    for topic in &topology.topics {
        for name in &topic.schemas {
            let contract = &topology.contracts[name];
            let subject = topic.subject(contract);
            let id = registry.registered_id(&subject, &contract.text).await.expect("registered");
            let encoder = Encoder::new(contract.schema.clone(), id).expect("encoder");
            let names = names_of(&contract.schema);
            for v in 0..VARIANTS {
                let json = sample(&contract.schema, &names, v);
                let value = json_to_avro(&contract.schema, &json, UnknownFields::Reject)
                    .unwrap_or_else(|e| panic!("{name} variant {v}: {e:?}"));
                let canonical = avro_to_json(&contract.schema, &value);
                let bytes = encoder.encode(value).expect("the hub encodes");
                cases.push((topic.name.clone(), name.clone(), !subject.ends_with("-value"), canonical, bytes));
            }
        }
    }
    let contracts: std::collections::BTreeSet<&String> = cases.iter().map(|c| &c.1).collect();
    assert_eq!(contracts.len(), topology.contracts.len(), "every contract is carried by a topic and tried");

    // The hub writes, the stock deserializer reads (with the writer schema from the registry).
    let requests: Vec<Json> =
        cases.iter().map(|(topic, _, _, _, bytes)| json!({"topic": topic, "hex": hex(bytes)})).collect();
    let read = run_async("deserialize", requests).await;
    assert_eq!(read.len(), cases.len());
    for ((_, name, _, canonical, _), got) in cases.iter().zip(&read) {
        assert_eq!(&got["value"], canonical, "{name}: what Confluent's deserializer read from the hub's bytes");
    }

    // The stock serializer writes (shortest decimals, its own registration lookup), the hub reads.
    let requests: Vec<Json> = cases
        .iter()
        .map(|(topic, name, record, canonical, _)| {
            json!({"topic": topic, "schema": topology.contracts[name].text, "value": canonical, "record_strategy": record})
        })
        .collect();
    let written = run_async("serialize", requests).await;
    assert_eq!(written.len(), cases.len());
    let mut shorter = 0;
    for ((_, name, _, canonical, ours), got) in cases.iter().zip(&written) {
        let bytes = unhex(got["hex"].as_str().expect("hex"));
        shorter += usize::from(bytes.len() < ours.len());
        let decoded = reader.decode(&bytes).await.unwrap_or_else(|e| panic!("{name}: the hub refused {e}"));
        assert_eq!(&decoded.contract, name);
        assert_eq!(&reader.to_json(&decoded), canonical, "{name}: what the hub read from Confluent's bytes");
        // The roles' reader: straight from the bytes when the writer schema is the contract.
        let (contract, json) = reader.decode_json(&bytes).await.unwrap_or_else(|e| panic!("{name}: refused {e}"));
        assert_eq!(&contract, name);
        assert_eq!(&json, canonical, "{name}: what the roles read from Confluent's bytes");
    }
    assert!(shorter > 0, "the stock serializer wrote no decimal shorter than the hub's: the case is not exercised");
}

/// order_received evolved as an upstream producer would: a new optional field, a new channel.
fn evolved_order_schema(text: &str) -> String {
    let mut schema: Json = serde_json::from_str(text).expect("contract JSON");
    let fields = schema["fields"].as_array_mut().expect("fields");
    for field in fields.iter_mut() {
        if field["name"] == "channel" {
            field["type"]["symbols"].as_array_mut().expect("symbols").push(json!("KIOSK"));
        }
    }
    fields.push(json!({"name": "loyalty_tier", "type": ["null", "string"], "default": null}));
    schema.to_string()
}

fn order(correlation_id: &str) -> Json {
    json!({
        "event_id": "0190d3f4-1111-7000-8000-0000000000aa", "correlation_id": correlation_id, "order_id": "o-1",
        "partner": "acme-shop", "customer_id": "c-1",
        "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "12.34"}, {"sku": "SKU-2", "quantity": 1, "unit_price": "9999999999999999.99"}],
        "currency": "BRL", "channel": "KIOSK", "callback_url": null, "received_at": "2026-11-30T12:00:00.000Z",
        "attributes": {}, "loyalty_tier": "gold",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_compatible_version_is_read_and_unknown_or_incompatible_ids_are_named() {
    let (topology, prefix) = provisioned("evolve");
    let reader = reader(&topology);
    let contract = &topology.contracts["order_received"];
    let topic = format!("{prefix}orders.inbound");
    let evolved = evolved_order_schema(&contract.text);
    // Registered by the stock client under the topic's subject; the subject's BACKWARD rule
    // (set by `hub schemas register`) accepts it.
    let registered = run_async("register", vec![json!({"subject": format!("{topic}-value"), "schema": evolved})]).await;
    let new_id = registered[0]["id"].as_u64().expect("an id");
    let hub_id = registry().registered_id(&format!("{topic}-value"), &contract.text).await.expect("hub id");
    assert_ne!(new_id, u64::from(hub_id), "a new version, not the hub's");
    let written = run_async(
        "serialize",
        vec![json!({"topic": topic, "schema": evolved, "value": order("evolved-1"), "register": false})],
    )
    .await;
    let bytes = unhex(written[0]["hex"].as_str().expect("hex"));
    let decoded = reader.decode(&bytes).await.expect("a compatible version is read");
    assert_eq!(u64::from(decoded.schema_id), new_id);
    let json = reader.to_json(&decoded);
    let (_, through_roles) = reader.decode_json(&bytes).await.expect("read by the roles' reader too");
    assert_eq!(through_roles, json, "another writer schema takes the resolving path");
    assert_eq!(json["channel"], "UNKNOWN", "a symbol the contract lacks takes the enum's default");
    assert!(json.get("loyalty_tier").is_none(), "a field the contract lacks is dropped");
    assert_eq!(json["items"][1]["unit_price"], "9999999999999999.99");
    assert_eq!(json["items"][0]["unit_price"], "12.34");

    // An id the registry does not hold.
    let mut unknown = vec![0, 0x7f, 0xff, 0xff, 0x01];
    unknown.extend_from_slice(&bytes[5..]);
    match reader.decode(&unknown).await {
        Err(e @ DecodeError::UnknownSchema { id: 0x7fff_ff01, .. }) => {
            assert!(e.to_string().contains("schema id 2147483393"), "{e}")
        }
        other => panic!("an unknown id must be named: {other:?}"),
    }

    // The same record name with a field of another type, under a subject of its own.
    let mut incompatible: Json = serde_json::from_str(&contract.text).expect("contract JSON");
    for field in incompatible["fields"].as_array_mut().expect("fields") {
        if field["name"] == "currency" {
            field["type"] = json!("int");
        }
    }
    let mut wrong = order("wrong-1");
    wrong["currency"] = json!(986);
    wrong["channel"] = json!("WEB");
    wrong.as_object_mut().expect("object").remove("loyalty_tier");
    let other_topic = format!("{prefix}elsewhere");
    let written =
        run_async("serialize", vec![json!({"topic": other_topic, "schema": incompatible.to_string(), "value": wrong})])
            .await;
    let bytes = unhex(written[0]["hex"].as_str().expect("hex"));
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    match reader.decode(&bytes).await {
        Err(e @ DecodeError::Contract { .. }) => {
            assert!(e.to_string().contains(&format!("schema id {id} ")), "{e}");
            assert!(e.to_string().contains("order_received"), "{e}");
        }
        other => panic!("an incompatible writer must be refused naming its id: {other:?}"),
    }
}

//! The direct encoder against the general path (`json_to_avro`, then apache-avro's writer) on
//! every contract of the repository and a schema of every other type, with bodies generated
//! valid and broken: whatever it writes is what the general path writes, and whatever the
//! general path refuses it declines.

use std::collections::HashMap;

use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::Schema;
use serde_json::{json, Map, Value as Json};

use super::Plan;
use crate::avro::Encoder;
use crate::contract::{json_to_avro, UnknownFields};

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).expect("index")]
    }
}

/// Generates bodies for a schema: valid unless `broken`, and then wrong one time in a few.
struct Bodies<'s> {
    names: HashMap<Name, &'s Schema>,
    rng: Rng,
    broken: bool,
}

impl<'s> Bodies<'s> {
    fn wrong(&mut self) -> bool {
        self.broken && self.rng.one_in(12)
    }

    fn body(&mut self, schema: &'s Schema, depth: usize) -> Json {
        let schema = match schema {
            Schema::Ref { name } => self.names[name],
            other => other,
        };
        if self.wrong() {
            return self.rng.pick(&[json!(null), json!("x"), json!(1.5), json!({}), json!([]), json!(true)]).clone();
        }
        let r = &mut self.rng;
        match schema {
            Schema::Null => Json::Null,
            Schema::Boolean => json!(r.one_in(2)),
            Schema::Int => {
                r.pick(&[json!(0), json!(-1), json!(i32::MAX), json!(i32::MIN), json!(300), json!(-65)]).clone()
            }
            Schema::Long => {
                r.pick(&[json!(0), json!(i64::MAX), json!(i64::MIN), json!(1_700_000_000_000_i64), json!(-2)]).clone()
            }
            Schema::Float => r.pick(&[json!(0.5), json!(-3), json!(1e30), json!(2.75)]).clone(),
            Schema::Double => r.pick(&[json!(0.1), json!(-7), json!(1e300), json!(u64::MAX)]).clone(),
            Schema::String => r.pick(&[json!(""), json!("acme"), json!("façade ✓"), json!("a/b~c")]).clone(),
            Schema::Bytes => r.pick(&[json!(""), json!("AAEC/w=="), json!("aGVsbG8=")]).clone(),
            Schema::Fixed(fixed) => json!(base64_of(&vec![7u8; fixed.size])),
            Schema::Enum(e) => json!(r.pick(&e.symbols)),
            Schema::Uuid(_) => r
                .pick(&[
                    json!("0b8f7a51-3c55-4b0e-9c1f-2f0a4b6c9d10"),
                    json!("0B8F7A513C554B0E9C1F2F0A4B6C9D10"),
                    json!("urn:uuid:0b8f7a51-3c55-4b0e-9c1f-2f0a4b6c9d10"),
                ])
                .clone(),
            Schema::Date => r.pick(&[json!("2024-02-29"), json!(19_000), json!(-1)]).clone(),
            Schema::TimeMillis | Schema::TimeMicros => {
                r.pick(&[json!("12:34:56.789"), json!("00:00:00"), json!(1000), json!("23:59:59.999999")]).clone()
            }
            Schema::TimestampMillis | Schema::TimestampMicros | Schema::TimestampNanos => r
                .pick(&[
                    json!("2026-12-02T05:19:15.123Z"),
                    json!("2026-12-02T07:19:15.123456+02:00"),
                    json!(1_764_650_000_000_i64),
                ])
                .clone(),
            Schema::Decimal(_) => {
                r.pick(&[json!("129.90"), json!("-0.01"), json!("0"), json!(42), json!("99999999.99")]).clone()
            }
            Schema::Array(array) => {
                let n = if depth > 3 { 0 } else { self.rng.below(4) };
                Json::Array((0..n).map(|_| self.body(&array.items, depth + 1)).collect())
            }
            Schema::Map(map) => {
                let n = if depth > 3 { 0 } else { self.rng.below(4) };
                Json::Object((0..n).map(|i| (format!("k{i}"), self.body(&map.types, depth + 1))).collect())
            }
            Schema::Union(union) => {
                let variant = self.rng.pick(union.variants());
                self.body(variant, depth + 1)
            }
            Schema::Record(record) => {
                let mut object = Map::new();
                for field in &record.fields {
                    let optional = field.default.is_some();
                    if optional && self.rng.one_in(3) {
                        continue;
                    }
                    if self.wrong() {
                        continue;
                    }
                    let value =
                        if optional && self.rng.one_in(4) { Json::Null } else { self.body(&field.schema, depth + 1) };
                    object.insert(field.name.clone(), value);
                }
                if self.wrong() {
                    object.insert("surprise".to_owned(), json!(1));
                }
                Json::Object(object)
            }
            _ => Json::Null,
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn has_map(schema: &Schema) -> bool {
    serde_json::to_string(schema).expect("schema").contains("\"map\"")
}

fn decoded(schema: &Schema, bytes: &[u8]) -> Value {
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema).build().expect("reader");
    reader.read_value(&mut &bytes[..]).expect("decodes with its own schema")
}

/// Runs `bodies` through both paths; returns how many the direct path wrote.
fn check(name: &str, schema: &Schema, bodies: &[Json]) -> usize {
    let plan = Plan::new(schema);
    let encoder = Encoder::new(schema.clone(), 1).expect("encoder");
    let mut direct = 0;
    for body in bodies {
        for unknown in [UnknownFields::Reject, UnknownFields::Ignore] {
            let general = json_to_avro(schema, body, unknown).map(|v| encoder.encode(v).expect("writes")[5..].to_vec());
            let mut out = vec![9];
            let written = plan.encode(body, unknown, &mut out).map(|()| out[1..].to_vec());
            if written.is_none() {
                assert_eq!(out, vec![9], "{name}: a declined body left bytes behind");
            }
            match (&general, &written) {
                (Ok(expected), Some(got)) if has_map(schema) => {
                    assert_eq!(decoded(schema, got), decoded(schema, expected), "{name} {unknown:?}: {body}");
                }
                (Ok(expected), Some(got)) => assert_eq!(got, expected, "{name} {unknown:?}: {body}"),
                (Err(violations), Some(_)) => {
                    panic!("{name} {unknown:?}: wrote {body} the general path refuses: {violations:?}")
                }
                (_, None) => {}
            }
            direct += usize::from(written.is_some());
            // And the encoder's own entry point gives the general path's answer either way.
            let through = encoder.encode_json(body, unknown).map(|b| b[5..].to_vec());
            match (&general, &through) {
                (Ok(expected), Ok(got)) if has_map(schema) => {
                    assert_eq!(decoded(schema, got), decoded(schema, expected))
                }
                (Ok(expected), Ok(got)) => assert_eq!(got, expected),
                (Err(violations), Err(super::super::EncodeError::Contract(same))) => assert_eq!(violations, same),
                other => panic!("{name}: encode_json differs from the general path: {other:?}"),
            }
        }
    }
    direct
}

fn bodies(schema: &Schema, seed: u64, broken: bool, n: usize) -> Vec<Json> {
    let names = ResolvedSchema::new(schema).map(|r| r.get_names().clone()).unwrap_or_default();
    let mut generator = Bodies { names, rng: Rng(seed), broken };
    (0..n).map(|_| generator.body(schema, 0)).collect()
}

fn contracts() -> Vec<(String, Schema)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let mut out: Vec<(String, Schema)> = std::fs::read_dir(&dir)
        .expect("schemas/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "avsc"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read");
            (path.display().to_string(), Schema::parse_str(&text).expect("parses"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 10, "the repository's contracts: {}", out.len());
    out
}

#[test]
fn every_contract_writes_what_the_general_path_writes_and_valid_bodies_go_direct() {
    for (seed, (name, schema)) in (1_u64..).zip(contracts()) {
        let valid = bodies(&schema, seed * 7919, false, 300);
        let direct = check(&name, &schema, &valid);
        // Valid bodies of the shipped contracts never need the general path.
        assert_eq!(direct, 2 * valid.len(), "{name}: valid bodies declined");
        let broken = bodies(&schema, seed * 104_729, true, 600);
        check(&name, &schema, &broken);
    }
}

/// Every other type: fixed, fixed decimals, uuids as bytes and fixed, times, a named type
/// used twice, defaults of every kind.
fn misc() -> Schema {
    Schema::parse_str(
        r#"{"type": "record", "name": "Misc", "namespace": "t", "fields": [
            {"name": "f", "type": {"type": "fixed", "name": "F4", "size": 4}},
            {"name": "fd", "type": {"type": "fixed", "name": "F8", "size": 8, "logicalType": "decimal", "precision": 12, "scale": 3}},
            {"name": "ub", "type": {"type": "bytes", "logicalType": "uuid"}},
            {"name": "uf", "type": {"type": "fixed", "name": "U16", "size": 16, "logicalType": "uuid"}},
            {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
            {"name": "tn", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "fl", "type": "float"},
            {"name": "db", "type": "double"},
            {"name": "one", "type": {"type": "record", "name": "Line", "fields": [
                {"name": "sku", "type": "string"},
                {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}}]}},
            {"name": "two", "type": ["null", "Line"], "default": null},
            {"name": "many", "type": {"type": "array", "items": "Line"}},
            {"name": "tags", "type": {"type": "map", "values": ["null", "long"]}, "default": {}},
            {"name": "raw", "type": "bytes", "default": "\u00ff"},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"], "default": "A"}, "default": "B"},
            {"name": "n", "type": "long", "default": 7},
            {"name": "s", "type": ["string", "null"], "default": "x"}
        ]}"#,
    )
    .expect("schema")
}

#[test]
fn every_other_type_writes_what_the_general_path_writes() {
    let schema = misc();
    let valid = bodies(&schema, 42, false, 2000);
    let direct = check("misc", &schema, &valid);
    // Exactly the bodies that leave `raw` to its bytes default are declined.
    let raw_given = valid.iter().filter(|body| body.get("raw").is_some_and(|raw| !raw.is_null())).count();
    assert!(raw_given > valid.len() / 3, "the generator gives raw: {raw_given}");
    assert_eq!(direct, 2 * raw_given, "misc: bodies declined that need no default");
    let broken = bodies(&schema, 43, true, 4000);
    check("misc", &schema, &broken);
}

#[test]
fn a_union_of_two_types_is_left_to_the_general_path() {
    let schema = Schema::parse_str(
        r#"{"type": "record", "name": "U", "fields": [
            {"name": "either", "type": ["null", "int", "string"], "default": null},
            {"name": "n", "type": "int"}]}"#,
    )
    .expect("schema");
    let valid = bodies(&schema, 9, false, 200);
    assert_eq!(check("union", &schema, &valid), 0);
    check("union", &schema, &bodies(&schema, 10, true, 400));
}

#[test]
fn edge_values_match_the_general_path() {
    let schema = misc();
    let base = bodies(&schema, 5, false, 1).remove(0);
    let cases: Vec<(&str, Json)> = vec![
        ("fl", json!(1e39)),
        ("fl", json!(-0.0)),
        ("tm", json!(86_400_000)),
        ("tm", json!("24:00:00")),
        ("tu", json!(-1)),
        ("d", json!(i64::from(i32::MAX) + 1)),
        ("d", json!("2023-02-29")),
        ("fd", json!("999999999.999")),
        ("fd", json!("9999999999.999")),
        ("fd", json!("1.0001")),
        ("fd", json!("1.2300")),
        ("fd", json!("-")),
        ("fd", json!(1.5)),
        ("f", json!("AAAA")),
        ("f", json!("AAAAAAA=")),
        ("ub", json!("not a uuid")),
        ("n", json!(u64::MAX)),
        ("n", json!(null)),
        ("s", json!(null)),
        ("kind", json!("C")),
    ];
    let mut bodies = Vec::new();
    for (field, value) in cases {
        let mut body = base.clone();
        body[field] = value;
        bodies.push(body);
    }
    check("misc edges", &schema, &bodies);
}

/// Reads `bodies` (JSON) encoded by the general path, then mangled, both ways: whatever the
/// direct read gives is what the general read gives, and what the general read refuses the
/// direct read declines. Returns how many intact bodies the direct read took.
fn check_read(name: &str, schema: &Schema, bodies: &[Json], rng: &mut Rng) -> usize {
    use crate::avro::reader::{read_value, Contract, Writer};
    use crate::contract::avro_to_json;
    let (full_name, contract) = Contract::new("c".to_owned(), schema.clone()).expect("a record");
    let contracts = HashMap::from([(full_name, contract)]);
    let contract = contracts.values().next().expect("one");
    let writer = Writer::new(schema.clone(), &contracts).expect("writer");
    let plan = Plan::new(schema);
    let encoder = Encoder::new(schema.clone(), 1).expect("encoder");
    let mut direct = 0;
    for body in bodies {
        let Ok(value) = json_to_avro(schema, body, UnknownFields::Ignore) else { continue };
        let intact = encoder.encode(value).expect("writes")[5..].to_vec();
        let mut mangled = vec![intact.clone(), intact[..intact.len() / 2].to_vec()];
        for _ in 0..4 {
            let mut flipped = intact.clone();
            if !flipped.is_empty() {
                let at = usize::try_from(rng.below(flipped.len() as u64)).expect("index");
                flipped[at] ^= u8::try_from(1 + rng.below(255)).expect("byte");
            }
            mangled.push(flipped);
        }
        for (i, bytes) in mangled.iter().enumerate() {
            let general = read_value(&writer, contract, 1, bytes).map(|v| avro_to_json(schema, &v));
            let read = plan.decode(bytes);
            match (&general, &read) {
                (Ok(expected), Some(got)) => assert_eq!(got, expected, "{name}: {body} (variant {i})"),
                (Err(error), Some(got)) => panic!("{name}: read {got} from bytes the general path refuses: {error}"),
                (_, None) => {}
            }
            if i == 0 {
                assert!(general.is_ok(), "{name}: the general path reads its own record");
                direct += usize::from(read.is_some());
            }
        }
    }
    direct
}

#[test]
fn records_written_with_the_contract_read_as_the_general_path_reads_them() {
    let mut rng = Rng(77);
    for (seed, (name, schema)) in (1_u64..).zip(contracts()) {
        let valid = bodies(&schema, seed * 31, false, 200);
        assert_eq!(check_read(&name, &schema, &valid, &mut rng), valid.len(), "{name}: intact records declined");
    }
    let schema = misc();
    let valid = bodies(&schema, 11, false, 1000);
    assert_eq!(check_read("misc", &schema, &valid, &mut rng), valid.len());
}

#[test]
fn a_writer_schema_other_than_the_contract_takes_the_general_path() {
    use crate::avro::reader::{read_json, Contract, Writer};
    let contract_schema = misc();
    let (full_name, contract) = Contract::new("c".to_owned(), contract_schema.clone()).expect("a record");
    let contracts = HashMap::from([(full_name, contract)]);
    let contract = contracts.values().next().expect("one");
    // A newer writer: one more field. Its records resolve to the contract, but not byte for byte.
    let text = serde_json::to_string(&contract_schema).expect("text").replacen(
        r#""fields":["#,
        r#""fields":[{"name":"added","type":"long"},"#,
        1,
    );
    let newer = Schema::parse_str(&text).expect("newer schema");
    let writer = Writer::new(newer.clone(), &contracts).expect("writer");
    assert!(!writer.same_as_contract);
    assert!(Writer::new(contract_schema.clone(), &contracts).expect("writer").same_as_contract);
    let mut body = bodies(&contract_schema, 3, false, 1).remove(0);
    body["added"] = json!(5);
    body["raw"] = json!("AA==");
    let bytes =
        Encoder::new(newer.clone(), 2).expect("encoder").encode_json(&body, UnknownFields::Reject).expect("encodes");
    let read = read_json(&writer, contract, 2, &bytes[5..]).expect("resolves");
    assert_eq!(read.get("added"), None);
    assert_eq!(read["raw"], json!("AA=="));
}

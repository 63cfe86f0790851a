#![allow(clippy::unwrap_used)]

use super::*;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde_json::json;
use std::path::Path;

/// A real contract from the repository's schemas/ folder.
fn schema(name: &str) -> Schema {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas").join(name);
    Schema::parse_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn inline(schema: Json) -> Schema {
    Schema::parse(&schema).unwrap()
}

fn dec(unscaled: i128) -> Value {
    Value::Decimal(Decimal::from(unscaled.to_be_bytes()))
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn field<'v>(record: &'v Value, name: &str) -> &'v Value {
    let Value::Record(fields) = record else { panic!("not a record: {record:?}") };
    &fields.iter().find(|(n, _)| n == name).unwrap().1
}

fn pointers(violations: &[Violation]) -> Vec<&str> {
    violations.iter().map(|v| v.pointer.as_str()).collect()
}

fn violation<'v>(violations: &'v [Violation], pointer: &str) -> &'v Violation {
    violations
        .iter()
        .find(|v| v.pointer == pointer)
        .unwrap_or_else(|| panic!("no violation at {pointer}: {violations:#?}"))
}

fn encode(schema: &Schema, value: &Value) -> Vec<u8> {
    GenericDatumWriter::builder(schema).build().unwrap().write_value_to_vec(value.clone()).unwrap()
}

fn decode(schema: &Schema, bytes: &[u8], reader_schema: Option<&Schema>) -> apache_avro::AvroResult<Value> {
    let reader = GenericDatumReader::builder(schema).maybe_reader_schema(reader_schema).build()?;
    reader.read_value(&mut &bytes[..])
}

/// Encodes (validating against the schema) and decodes with and without a reader schema.
fn encode_decode(schema: &Schema, value: &Value) -> Value {
    let bytes = encode(schema, value);
    let plain = decode(schema, &bytes, None).unwrap();
    let resolved = decode(schema, &bytes, Some(schema)).unwrap();
    assert_eq!(plain, resolved);
    plain
}

fn valid_order() -> Json {
    json!({
        "event_id": "7f9c24e8-3b12-4fef-91e0-2c5a4b1d6e01",
        "correlation_id": "corr-1",
        "order_id": "o-1",
        "partner": "acme",
        "customer_id": "cust-9",
        "items": [
            {"sku": "A-1", "quantity": 2, "unit_price": "12.34"},
            {"sku": "B-2", "quantity": 1, "unit_price": 5}
        ],
        "currency": "EUR",
        "channel": "WEB",
        "callback_url": "https://acme.example/cb",
        "received_at": "2024-05-01T14:30:00.123+02:00",
        "attributes": {"channel": "web"}
    })
}

fn expected_order() -> Value {
    let line = |sku: &str, quantity: i32, price: i128| {
        Value::Record(vec![
            ("sku".into(), string(sku)),
            ("quantity".into(), Value::Int(quantity)),
            ("unit_price".into(), dec(price)),
        ])
    };
    Value::Record(vec![
        ("event_id".into(), Value::Uuid(Uuid::parse_str("7f9c24e8-3b12-4fef-91e0-2c5a4b1d6e01").unwrap())),
        ("correlation_id".into(), string("corr-1")),
        ("order_id".into(), string("o-1")),
        ("partner".into(), string("acme")),
        ("customer_id".into(), string("cust-9")),
        ("items".into(), Value::Array(vec![line("A-1", 2, 1234), line("B-2", 1, 500)])),
        ("currency".into(), string("EUR")),
        ("channel".into(), Value::Enum(1, "WEB".into())),
        ("callback_url".into(), Value::Union(1, Box::new(string("https://acme.example/cb")))),
        ("received_at".into(), Value::TimestampMillis(1_714_566_600_123)),
        ("attributes".into(), Value::Map(HashMap::from([("channel".to_owned(), string("web"))]))),
    ])
}

#[test]
fn valid_order_converts_in_schema_order_and_survives_encoding() {
    let schema = schema("order_received.avsc");
    let value = json_to_avro(&schema, &valid_order(), UnknownFields::Reject).unwrap();
    assert_eq!(value, expected_order());
    assert_eq!(encode_decode(&schema, &value), value);
}

#[test]
fn avro_to_json_gives_the_accepted_shape_and_round_trips() {
    let schema = schema("order_received.avsc");
    let value = json_to_avro(&schema, &valid_order(), UnknownFields::Reject).unwrap();
    let decoded = encode_decode(&schema, &value);
    let back = avro_to_json(&schema, &decoded);
    let mut normalized = valid_order();
    normalized["items"][1]["unit_price"] = json!("5.00");
    normalized["received_at"] = json!("2024-05-01T12:30:00.123Z");
    assert_eq!(back, normalized);
    assert_eq!(json_to_avro(&schema, &back, UnknownFields::Reject).unwrap(), value);
}

#[test]
fn every_violation_is_reported_with_its_pointer() {
    let schema = schema("order_received.avsc");
    let mut body = valid_order();
    let order = body.as_object_mut().unwrap();
    order.remove("customer_id");
    order.insert("event_id".into(), json!("not-a-uuid"));
    order.insert("coupon".into(), json!("SAVE10"));
    order.insert("callback_url".into(), json!(42));
    order.insert("channel".into(), json!("FAX"));
    order.insert("received_at".into(), json!("yesterday"));
    order.insert(
        "items".into(),
        json!([
            {"sku": "A-1", "quantity": 2, "unit_price": "1.999"},
            {"sku": "B-2", "quantity": "two", "unit_price": "1.00"},
            {"sku": "C-3", "quantity": 3_000_000_000_i64, "unit_price": "1.00"}
        ]),
    );
    let violations = json_to_avro(&schema, &body, UnknownFields::Reject).unwrap_err();
    assert_eq!(
        pointers(&violations),
        [
            "/event_id",
            "/customer_id",
            "/items/0/unit_price",
            "/items/1/quantity",
            "/items/2/quantity",
            "/channel",
            "/callback_url",
            "/received_at",
            "/coupon"
        ]
    );
    let at = |p| violation(&violations, p);
    assert_eq!(at("/event_id").expected, "UUID string");
    assert!(at("/event_id").detail.starts_with("\"not-a-uuid\" is not a UUID"));
    assert_eq!(at("/customer_id").expected, "string");
    assert_eq!(at("/customer_id").detail, "required field is missing");
    assert_eq!(at("/items/0/unit_price").expected, "decimal with at most 2 fraction digits");
    assert_eq!(at("/items/0/unit_price").detail, "1.999 has 3 fraction digits; amounts are not rounded");
    assert_eq!(at("/items/1/quantity").expected, "int (32-bit)");
    assert_eq!(at("/items/1/quantity").detail, "expected an integer, found a string");
    assert_eq!(at("/items/2/quantity").detail, "3000000000 is out of the 32-bit range");
    assert_eq!(at("/channel").expected, "one of UNKNOWN, WEB, MOBILE, MARKETPLACE, PHONE");
    assert_eq!(at("/channel").detail, "unknown symbol \"FAX\"");
    assert_eq!(at("/callback_url").expected, "string or null");
    assert_eq!(at("/callback_url").detail, "expected a string, found a number");
    assert_eq!(at("/received_at").expected, "RFC 3339 timestamp or epoch milliseconds");
    assert!(at("/received_at").detail.starts_with("\"yesterday\" is not an RFC 3339 timestamp"));
    assert_eq!(at("/coupon").expected, "only the fields of record OrderReceived");
    assert_eq!(at("/coupon").detail, "unknown field");
}

#[test]
fn unknown_fields_are_dropped_under_ignore_and_refused_under_reject() {
    let schema = schema("order_received.avsc");
    let mut body = valid_order();
    body["coupon"] = json!("SAVE10");
    body["items"][0]["gift_wrap"] = json!(true);
    assert_eq!(json_to_avro(&schema, &body, UnknownFields::Ignore).unwrap(), expected_order());
    let violations = json_to_avro(&schema, &body, UnknownFields::Reject).unwrap_err();
    assert_eq!(pointers(&violations), ["/items/0/gift_wrap", "/coupon"]);
    assert_eq!(violations[0].expected, "only the fields of record OrderLine");
    assert_eq!(serde_json::from_value::<UnknownFields>(json!("ignore")).unwrap(), UnknownFields::Ignore);
    assert_eq!(serde_json::from_value::<UnknownFields>(json!("reject")).unwrap(), UnknownFields::Reject);
    assert_eq!(UnknownFields::default(), UnknownFields::Reject);
}

#[test]
fn defaults_fill_missing_optional_fields_and_null_counts_as_missing() {
    let schema = schema("order_received.avsc");
    let mut body = valid_order();
    body.as_object_mut().unwrap().remove("callback_url");
    body.as_object_mut().unwrap().remove("channel");
    body["attributes"] = Json::Null;
    let value = json_to_avro(&schema, &body, UnknownFields::Reject).unwrap();
    assert_eq!(field(&value, "channel"), &Value::Enum(0, "UNKNOWN".into()));
    assert_eq!(field(&value, "callback_url"), &Value::Union(0, Box::new(Value::Null)));
    assert_eq!(field(&value, "attributes"), &Value::Map(HashMap::new()));
    assert_eq!(encode_decode(&schema, &value), value);

    body["callback_url"] = Json::Null;
    body["customer_id"] = Json::Null;
    let violations = json_to_avro(&schema, &body, UnknownFields::Reject).unwrap_err();
    assert_eq!(pointers(&violations), ["/customer_id"]);
    assert_eq!(violations[0].detail, "required field is missing");
}

fn order_state() -> Json {
    json!({
        "correlation_id": "corr-1", "order_id": "o-1", "partner": "acme", "status": "VALIDATED",
        "version": 3, "items": [{"sku": "A-1", "quantity": 2, "unit_price": "12.34"}], "currency": "EUR",
        "subtotal": "24.68", "discount": "0", "total": "-0.01",
        "deadline": 1_714_566_600_123_i64, "created_at": "2024-01-01T00:00:00Z", "updated_at": 1_704_067_200_000_i64
    })
}

#[test]
fn order_state_enums_nullable_timestamps_and_defaults() {
    let schema = schema("order_state.avsc");
    let value = json_to_avro(&schema, &order_state(), UnknownFields::Reject).unwrap();
    assert_eq!(field(&value, "status"), &Value::Enum(2, "VALIDATED".into()));
    assert_eq!(field(&value, "version"), &Value::Long(3));
    assert_eq!(field(&value, "discount"), &dec(0));
    assert_eq!(field(&value, "total"), &dec(-1));
    assert_eq!(field(&value, "failure_reason"), &Value::Union(0, Box::new(Value::Null)));
    assert_eq!(field(&value, "deadline"), &Value::Union(1, Box::new(Value::TimestampMillis(1_714_566_600_123))));
    assert_eq!(field(&value, "created_at"), &Value::TimestampMillis(1_704_067_200_000));
    assert_eq!(field(&value, "updated_at"), &Value::TimestampMillis(1_704_067_200_000));
    let decoded = encode_decode(&schema, &value);
    assert_eq!(decoded, value);
    let back = avro_to_json(&schema, &decoded);
    assert_eq!(back["total"], json!("-0.01"));
    assert_eq!(back["discount"], json!("0.00"));
    assert_eq!(back["deadline"], json!("2024-05-01T12:30:00.123Z"));
    assert_eq!(back["created_at"], json!("2024-01-01T00:00:00.000Z"));
    assert_eq!(back["partner_reference"], Json::Null);
    assert_eq!(json_to_avro(&schema, &back, UnknownFields::Reject).unwrap(), value);
}

#[test]
fn unknown_enum_symbols_are_refused_not_defaulted() {
    let schema = schema("order_state.avsc");
    let mut body = order_state();
    body["status"] = json!("SHIPPED");
    body["deadline"] = json!("soon");
    let violations = json_to_avro(&schema, &body, UnknownFields::Reject).unwrap_err();
    assert_eq!(pointers(&violations), ["/status", "/deadline"]);
    assert_eq!(
        violations[0].expected,
        "one of UNKNOWN, RECEIVED, VALIDATED, SENT_TO_PARTNER, COMPLETED, REJECTED, COMPENSATING, COMPENSATED"
    );
    assert_eq!(violations[0].detail, "unknown symbol \"SHIPPED\"");
    assert_eq!(violations[1].expected, "RFC 3339 timestamp or epoch milliseconds or null");
    body["status"] = json!(1);
    body["deadline"] = Json::Null;
    let violations = json_to_avro(&schema, &body, UnknownFields::Reject).unwrap_err();
    assert_eq!(pointers(&violations), ["/status"]);
    assert_eq!(violations[0].detail, "expected a string, found a number");
}

fn price() -> Schema {
    inline(json!({"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}))
}

#[test]
fn decimals_are_exact_or_refused() {
    let schema = price();
    let accepted = [
        (json!("12.34"), 1234),
        (json!("-5"), -500),
        (json!("0.1"), 10),
        (json!("12.340"), 1234),
        (json!("007.50"), 750),
        (json!(3), 300),
        (json!(-7), -700),
        (json!("9999999999999999.99"), 999_999_999_999_999_999),
        (json!("-9999999999999999.99"), -999_999_999_999_999_999),
    ];
    for (input, unscaled) in accepted {
        let value = json_to_avro(&schema, &input, UnknownFields::Reject).unwrap();
        assert_eq!(value, dec(unscaled), "{input}");
        assert_eq!(encode_decode(&schema, &value), value, "{input}");
    }
    let refused = [
        (json!("1e3"), "decimal with at most 18 digits, 2 after the point"),
        (json!(1e21), "decimal with at most 18 digits, 2 after the point"),
        (json!("12."), "decimal with at most 18 digits, 2 after the point"),
        (json!(".5"), "decimal with at most 18 digits, 2 after the point"),
        (json!(" 1"), "decimal with at most 18 digits, 2 after the point"),
        (json!("+1"), "decimal with at most 18 digits, 2 after the point"),
        (json!("--1"), "decimal with at most 18 digits, 2 after the point"),
        (json!("1,5"), "decimal with at most 18 digits, 2 after the point"),
        (json!(""), "decimal with at most 18 digits, 2 after the point"),
        (json!(true), "decimal with at most 18 digits, 2 after the point"),
        (json!("0.125"), "decimal with at most 2 fraction digits"),
        (json!(0.125), "decimal with at most 18 digits, 2 after the point"),
        (json!(12.5), "decimal with at most 18 digits, 2 after the point"),
        (json!(-0.05), "decimal with at most 18 digits, 2 after the point"),
        (json!(1_234_567_890_123_456.8), "decimal with at most 18 digits, 2 after the point"),
        (json!("10000000000000000.00"), "decimal with at most 18 digits"),
    ];
    for (input, expected) in refused {
        let violations = json_to_avro(&schema, &input, UnknownFields::Reject).unwrap_err();
        assert_eq!(violations.len(), 1, "{input}");
        assert_eq!(violations[0].pointer, "", "{input}");
        assert_eq!(violations[0].expected, expected, "{input}");
    }
}

#[test]
fn money_as_a_json_number_with_a_fraction_is_refused_never_rounded() {
    // 1234567890123456.78 fits decimal(18,2), but as a JSON number it is a float: ...456.8.
    let body: Json = serde_json::from_str(r#"{"price": 1234567890123456.78}"#).unwrap();
    let violations = json_to_avro(&price(), &body["price"], UnknownFields::Reject).unwrap_err();
    assert!(violations[0].detail.contains("send the amount as a string (\"129.90\")"), "{violations:?}");
    let exact: Json = serde_json::from_str(r#"{"price": "1234567890123456.78"}"#).unwrap();
    let value = json_to_avro(&price(), &exact["price"], UnknownFields::Reject).unwrap();
    assert_eq!(avro_to_json(&price(), &value), json!("1234567890123456.78"));
}

#[test]
fn decimals_print_with_exactly_scale_digits() {
    let schema = price();
    for (unscaled, text) in [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (1234, "12.34"), (-100, "-1.00")] {
        assert_eq!(avro_to_json(&schema, &dec(unscaled)), json!(text));
    }
    let whole = inline(json!({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 0}));
    assert_eq!(avro_to_json(&whole, &dec(-42)), json!("-42"));
    // Minimal two's-complement bytes decode the same as padded ones.
    assert_eq!(avro_to_json(&schema, &Value::Decimal(Decimal::from([0xFF_u8]))), json!("-0.01"));
}

#[test]
fn apache_avro_refuses_short_decimal_bytes_on_resolution_so_we_pad_them() {
    let schema = price();
    let short = Value::Decimal(Decimal::from([0x04_u8, 0xD2]));
    let bytes = encode(&schema, &short);
    assert!(decode(&schema, &bytes, None).is_ok());
    assert!(decode(&schema, &bytes, Some(&schema)).is_err());
    let ours = json_to_avro(&schema, &json!("12.34"), UnknownFields::Reject).unwrap();
    assert_eq!(
        <Vec<u8>>::try_from(match &ours {
            Value::Decimal(d) => d,
            _ => unreachable!(),
        })
        .unwrap()
        .len(),
        8
    );
}

#[test]
fn fixed_decimals_use_the_fixed_size() {
    let schema = inline(json!({"type": "fixed", "name": "Amount", "size": 8, "logicalType": "decimal",
        "precision": 18, "scale": 3}));
    let value = json_to_avro(&schema, &json!("-1.5"), UnknownFields::Reject).unwrap();
    assert_eq!(value, dec(-1500));
    assert_eq!(encode_decode(&schema, &value), value);
    assert_eq!(avro_to_json(&schema, &value), json!("-1.500"));
}

#[test]
fn integers_are_range_checked() {
    let int = Schema::Int;
    let long = Schema::Long;
    let convert = |s: &Schema, j: Json| json_to_avro(s, &j, UnknownFields::Reject);
    assert_eq!(convert(&int, json!(2_147_483_647)).unwrap(), Value::Int(i32::MAX));
    assert_eq!(convert(&int, json!(-2_147_483_648_i64)).unwrap(), Value::Int(i32::MIN));
    assert_eq!(convert(&int, json!(2_147_483_648_i64)).unwrap_err()[0].detail, "2147483648 is out of the 32-bit range");
    assert_eq!(convert(&int, json!(-2_147_483_649_i64)).unwrap_err()[0].expected, "int (32-bit)");
    assert_eq!(convert(&int, json!(1.5)).unwrap_err()[0].detail, "expected an integer, found 1.5");
    assert_eq!(convert(&long, json!(i64::MIN)).unwrap(), Value::Long(i64::MIN));
    assert_eq!(
        convert(&long, json!(u64::MAX)).unwrap_err()[0].detail,
        "18446744073709551615 is out of the 64-bit range"
    );
    assert_eq!(convert(&long, json!("1")).unwrap_err()[0].expected, "long (64-bit)");
    assert_eq!(convert(&Schema::Double, json!(1)).unwrap(), Value::Double(1.0));
    assert_eq!(convert(&Schema::Float, json!(0.5)).unwrap(), Value::Float(0.5));
    assert_eq!(convert(&Schema::Float, json!(1e300)).unwrap_err()[0].expected, "float");
    assert_eq!(convert(&Schema::Boolean, json!("true")).unwrap_err()[0].detail, "expected a boolean, found a string");
    assert_eq!(convert(&Schema::Null, json!(0)).unwrap_err()[0].detail, "expected null, found a number");
}

#[test]
fn timestamps_accept_rfc3339_with_offsets_or_epoch_millis() {
    let schema = inline(json!({"type": "long", "logicalType": "timestamp-millis"}));
    let convert = |j: Json| json_to_avro(&schema, &j, UnknownFields::Reject);
    let expected = Value::TimestampMillis(1_704_067_200_000);
    assert_eq!(convert(json!("2024-01-01T00:00:00Z")).unwrap(), expected);
    assert_eq!(convert(json!("2024-01-01T01:00:00+01:00")).unwrap(), expected);
    assert_eq!(convert(json!("2023-12-31T19:00:00.000-05:00")).unwrap(), expected);
    assert_eq!(convert(json!(1_704_067_200_000_i64)).unwrap(), expected);
    assert_eq!(convert(json!(-1)).unwrap(), Value::TimestampMillis(-1));
    assert_eq!(avro_to_json(&schema, &Value::TimestampMillis(-1)), json!("1969-12-31T23:59:59.999Z"));
    assert_eq!(avro_to_json(&schema, &expected), json!("2024-01-01T00:00:00.000Z"));
    for bad in [json!("2024-01-01"), json!("2024-01-01T00:00:00"), json!(1.5), json!(true)] {
        let violations = convert(bad.clone()).unwrap_err();
        assert_eq!(violations[0].expected, "RFC 3339 timestamp or epoch milliseconds", "{bad}");
    }
    let micros = inline(json!({"type": "long", "logicalType": "timestamp-micros"}));
    let value = json_to_avro(&micros, &json!("1970-01-01T00:00:01.000002Z"), UnknownFields::Reject).unwrap();
    assert_eq!(value, Value::TimestampMicros(1_000_002));
    assert_eq!(avro_to_json(&micros, &value), json!("1970-01-01T00:00:01.000002Z"));
}

fn misc() -> Schema {
    inline(json!({
        "type": "record", "name": "Misc", "namespace": "test",
        "fields": [
            {"name": "price", "type": {"type": "record", "name": "Money", "fields": [
                {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
                {"name": "currency", "type": "string", "default": "EUR"}
            ]}},
            {"name": "refund", "type": ["null", "Money"], "default": null},
            {"name": "choice", "type": ["null", "int", "string"], "default": null},
            {"name": "blob", "type": "bytes", "default": "\u{00ff}"},
            {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}, "default": "B"}
        ]
    }))
}

#[test]
fn named_references_unions_bytes_and_dates() {
    let schema = misc();
    let body = json!({
        "price": {"amount": "9.99"}, "refund": {"amount": "-1", "currency": "USD"}, "choice": "x",
        "digest": "3q2+7w==", "day": "2024-02-29", "at": "01:02:03.004"
    });
    let value = json_to_avro(&schema, &body, UnknownFields::Reject).unwrap();
    let money = |amount, currency: &str| {
        Value::Record(vec![("amount".into(), dec(amount)), ("currency".into(), string(currency))])
    };
    assert_eq!(field(&value, "price"), &money(999, "EUR"));
    assert_eq!(field(&value, "refund"), &Value::Union(1, Box::new(money(-100, "USD"))));
    assert_eq!(field(&value, "choice"), &Value::Union(2, Box::new(string("x"))));
    assert_eq!(field(&value, "blob"), &Value::Bytes(vec![0xFF]));
    assert_eq!(field(&value, "digest"), &Value::Fixed(4, vec![0xDE, 0xAD, 0xBE, 0xEF]));
    assert_eq!(field(&value, "day"), &Value::Date(19_782));
    assert_eq!(field(&value, "at"), &Value::TimeMillis(3_723_004));
    assert_eq!(field(&value, "tags"), &Value::Array(vec![]));
    assert_eq!(field(&value, "kind"), &Value::Enum(1, "B".into()));
    let decoded = encode_decode(&schema, &value);
    assert_eq!(decoded, value);
    let back = avro_to_json(&schema, &decoded);
    assert_eq!(back["refund"], json!({"amount": "-1.00", "currency": "USD"}));
    assert_eq!(back["blob"], json!("/w=="));
    assert_eq!(back["day"], json!("2024-02-29"));
    assert_eq!(back["at"], json!(3_723_004));
    assert_eq!(json_to_avro(&schema, &back, UnknownFields::Reject).unwrap(), value);
    let with_int = json!({"price": {"amount": 1}, "choice": 7, "digest": "AAAAAA==", "day": 0, "at": 0});
    let value = json_to_avro(&schema, &with_int, UnknownFields::Reject).unwrap();
    assert_eq!(field(&value, "choice"), &Value::Union(1, Box::new(Value::Int(7))));
}

#[test]
fn nested_and_union_violations_name_their_place() {
    let schema = misc();
    let body = json!({
        "price": "free", "refund": {"amount": "1.001", "extra": 1}, "choice": true,
        "digest": "AAAA", "day": "29/02/2024", "at": 86_400_000, "tags": ["ok", 5], "kind": "C"
    });
    let violations = json_to_avro(&schema, &body, UnknownFields::Reject).unwrap_err();
    assert_eq!(
        pointers(&violations),
        ["/price", "/refund/amount", "/refund/extra", "/choice", "/digest", "/day", "/at", "/tags/1", "/kind"]
    );
    let at = |p| violation(&violations, p);
    assert_eq!(at("/price").expected, "object (record Money)");
    assert_eq!(at("/price").detail, "expected an object, found a string");
    assert_eq!(at("/choice").expected, "null, int or string");
    assert_eq!(at("/choice").detail, "no type of the union accepts a boolean");
    assert_eq!(at("/digest").detail, "decodes to 3 bytes, not 4");
    assert_eq!(at("/at").detail, "86400000 is not within one day");
    assert_eq!(at("/kind").expected, "one of A, B");
}

#[test]
fn pointers_escape_keys_and_root_must_match() {
    let schema = schema("order_received.avsc");
    let mut body = valid_order();
    body["attributes"] = json!({"a/b~c": 1, "fine": "yes"});
    let violations = json_to_avro(&schema, &body, UnknownFields::Reject).unwrap_err();
    assert_eq!(pointers(&violations), ["/attributes/a~1b~0c"]);
    assert_eq!(violations[0].expected, "string");
    let violations = json_to_avro(&schema, &json!([1]), UnknownFields::Reject).unwrap_err();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].pointer, "");
    assert_eq!(violations[0].expected, "object (record OrderReceived)");
    let violations = json_to_avro(&schema, &json!({}), UnknownFields::Reject).unwrap_err();
    assert_eq!(
        pointers(&violations),
        [
            "/event_id",
            "/correlation_id",
            "/order_id",
            "/partner",
            "/customer_id",
            "/items",
            "/currency",
            "/received_at"
        ]
    );
}

#[test]
fn unsupported_types_are_violations_not_panics() {
    let schema = inline(json!({"type": "fixed", "name": "D", "size": 12, "logicalType": "duration"}));
    let violations = json_to_avro(&schema, &json!("AAAAAAAAAAAAAAAA"), UnknownFields::Reject).unwrap_err();
    assert_eq!(violations.len(), 1);
    assert!(violations[0].detail.starts_with("unsupported type"), "{violations:?}");
}

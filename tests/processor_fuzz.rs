//! Nothing a producer writes stops the processor: arbitrary bytes and arbitrary Avro of every
//! contract (values generated from each contract's schema, decimals of any length and any
//! number of digits, strings of any characters, any keys and headers) on both of its inputs, then
//! valid orders that must complete exactly once, the process alive and every record consumed.
//!
//! The generator is seeded (`HUB_FUZZ_SEED`, printed); `HUB_FUZZ_RECORDS` sets how many records.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apache_avro::types::Value;
use apache_avro::{Decimal, Schema};
use common::edge::{provision, test_topology};
use common::orders::{assert_exactly_once, delivered, orders};
use common::process::{produce_orders, publish_inventory, FakeErp, Processor};
use common::{bootstrap, registry_url, repo, unique_prefix};
use interchange_core::registry::RegistrySettings;
use interchange_core::topology::Topology;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// SplitMix64: small, seeded, good enough to pick shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, max: u64) -> Vec<u8> {
        (0..self.below(max + 1)).map(|_| self.next() as u8).collect()
    }

    fn text(&mut self, max: u64) -> String {
        const PIECES: &[&str] = &["a", "Z", "9", "-", " ", "é", "✓", "🚀", "\u{0}", "\"", "\\", "SKU-A", "acme-shop"];
        (0..self.below(max + 1)).map(|_| PIECES[self.below(PIECES.len() as u64) as usize]).collect()
    }

    fn long(&mut self) -> i64 {
        match self.below(5) {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => 0,
            3 => self.below(2_000_000_000_000) as i64,
            _ => self.next() as i64,
        }
    }
}

/// An arbitrary value of `schema` (valid for the writer, anything for the reader).
fn arbitrary(rng: &mut Rng, schema: &Schema, names: &HashMap<apache_avro::schema::Name, Schema>, depth: u32) -> Value {
    match schema {
        Schema::Ref { name } => arbitrary(rng, &names[name], names, depth),
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(rng.chance(50)),
        Schema::Int => Value::Int(match rng.below(4) {
            0 => i32::MIN,
            1 => i32::MAX,
            2 => rng.below(5) as i32 - 2,
            _ => rng.next() as i32,
        }),
        Schema::Long => Value::Long(rng.long()),
        Schema::Float => Value::Float(rng.next() as f32),
        Schema::Double => Value::Double(f64::from_bits(rng.next())),
        Schema::String => Value::String(rng.text(40)),
        Schema::Bytes => Value::Bytes(rng.bytes(40)),
        Schema::Uuid(_) => Value::Uuid(uuid::Uuid::from_u128(u128::from(rng.next()) << 64 | u128::from(rng.next()))),
        // Any length from 1 to 16 bytes, so any number of digits, beyond the precision too.
        Schema::Decimal(_) => {
            let mut bytes = rng.bytes(16);
            if bytes.is_empty() {
                bytes.push(0);
            }
            Value::Decimal(Decimal::from(bytes))
        }
        Schema::TimestampMillis => Value::TimestampMillis(rng.long()),
        Schema::TimestampMicros => Value::TimestampMicros(rng.long()),
        Schema::Date => Value::Date(rng.next() as i32),
        Schema::Enum(e) => {
            let i = rng.below(e.symbols.len() as u64) as usize;
            Value::Enum(i as u32, e.symbols[i].clone())
        }
        Schema::Fixed(f) => Value::Fixed(f.size, (0..f.size).map(|_| rng.next() as u8).collect()),
        Schema::Union(u) => {
            let i = rng.below(u.variants().len() as u64) as usize;
            Value::Union(i as u32, Box::new(arbitrary(rng, &u.variants()[i], names, depth)))
        }
        Schema::Array(a) => {
            let n = if depth > 2 { 0 } else { rng.below(4) };
            Value::Array((0..n).map(|_| arbitrary(rng, &a.items, names, depth + 1)).collect())
        }
        Schema::Map(m) => {
            let n = if depth > 2 { 0 } else { rng.below(3) };
            Value::Map((0..n).map(|_| (rng.text(8), arbitrary(rng, &m.types, names, depth + 1))).collect())
        }
        Schema::Record(r) => {
            Value::Record(r.fields.iter().map(|f| (f.name.clone(), arbitrary(rng, &f.schema, names, depth))).collect())
        }
        other => panic!("no arbitrary value for {other:?}: add one"),
    }
}

/// The group's committed offsets reach the end of every partition of `topics`; else the lag.
fn wait_consumed(group: &str, topics: &[String], limit: Duration) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let deadline = Instant::now() + limit;
    loop {
        let mut behind = Vec::new();
        for topic in topics {
            let mut list = TopicPartitionList::new();
            for p in 0..common::kafka::partitions(topic) {
                list.add_partition(topic, p);
            }
            let committed = consumer.committed_offsets(list, Duration::from_secs(10)).expect("committed offsets");
            for element in committed.elements() {
                let (_, high) =
                    consumer.fetch_watermarks(topic, element.partition(), Duration::from_secs(10)).expect("watermarks");
                let at = match element.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                if high > 0 && at < high {
                    behind.push(format!("{topic}/{}: committed {at} of {high}", element.partition()));
                }
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the processor did not consume everything: {behind:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn arbitrary_bytes_and_arbitrary_avro_of_every_contract_never_stop_the_processor() {
    let seed = std::env::var("HUB_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(11));
    let records: u64 = std::env::var("HUB_FUZZ_RECORDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    eprintln!("fuzz seed {seed} (HUB_FUZZ_SEED), {records} records (HUB_FUZZ_RECORDS)");
    let mut rng = Rng(seed);

    let copy = test_topology();
    let prefix = unique_prefix("fuzz");
    provision(&copy, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    let topology = Topology::load(&repo().join("topology.toml"), &prefix).expect("topology");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000_000), ("SKU-B", 1_000_000)]).await;
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), delivered);
    let processor = Processor::start(&copy, &prefix, "fuzzed", &[]);

    // Every contract with the schema id it is registered under (on whichever topic carries it).
    let registry = RegistrySettings::new(&registry_url()).client().expect("registry");
    let mut contracts = Vec::new();
    for topic in &topology.topics {
        for name in &topic.schemas {
            if contracts.iter().any(|(n, _, _, _)| n == name) {
                continue;
            }
            let contract = &topology.contracts[name];
            let id = registry.registered_id(&topic.subject(contract), &contract.text).await.expect("registered");
            let names = apache_avro::schema::ResolvedSchema::new(&contract.schema)
                .expect("resolves")
                .get_names()
                .iter()
                .map(|(n, s)| (n.clone(), (*s).clone()))
                .collect::<HashMap<_, _>>();
            contracts.push((name.clone(), contract.schema.clone(), id, names));
        }
    }
    assert_eq!(contracts.len(), topology.contracts.len());

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let inputs = [t("orders.inbound"), t("orders.results")];
    let mut kinds: HashMap<&str, usize> = HashMap::new();
    for _ in 0..records {
        let topic = &inputs[rng.below(2) as usize];
        let (payload, event_type, correlation) = if rng.chance(25) {
            *kinds.entry("bytes").or_default() += 1;
            let mut bytes = rng.bytes(64);
            if rng.chance(50) && bytes.len() > 5 {
                bytes[0] = 0;
            }
            (bytes, rng.text(12), rng.text(20))
        } else {
            let (name, schema, id, names) = &contracts[rng.below(contracts.len() as u64) as usize];
            *kinds.entry(name.as_str()).or_default() += 1;
            let value = arbitrary(&mut rng, schema, names, 0);
            let correlation = match &value {
                Value::Record(fields) => fields.iter().find_map(|(k, v)| match (k.as_str(), v) {
                    ("correlation_id", Value::String(s)) => Some(s.clone()),
                    _ => None,
                }),
                _ => None,
            }
            .unwrap_or_else(|| rng.text(20));
            let bytes = interchange_core::avro::wire_format(schema, *id, value).expect("valid for the writer");
            let event_type = if rng.chance(80) { name.clone() } else { rng.text(12) };
            (bytes, event_type, correlation)
        };
        let key = if rng.chance(80) { correlation.clone() } else { rng.text(20) };
        let headers = OwnedHeaders::new()
            .insert(Header { key: "event-type", value: Some(event_type.as_str()) })
            .insert(Header { key: "correlation-id", value: Some(correlation.as_str()) });
        let mut record = FutureRecord::to(topic).headers(headers);
        if !payload.is_empty() || rng.chance(50) {
            record = record.payload(&payload);
        }
        if rng.chance(95) {
            record = record.key(&key);
        }
        producer.send(record, Duration::from_secs(30)).await.expect("fuzz record produced");
    }
    eprintln!("fuzz records by kind: {kinds:?}");

    // Valid orders after the fuzz: they complete exactly once.
    let valid = orders(&prefix, 10);
    produce_orders(&t("orders.inbound"), &valid).await;
    let ids: Vec<String> = valid.iter().map(|(id, _)| id.clone()).collect();
    assert_exactly_once(&prefix, &ids).await;

    let group = format!("{prefix}{}", topology.processors[0].name);
    tokio::task::spawn_blocking(move || wait_consumed(&group, &inputs, Duration::from_secs(120)))
        .await
        .expect("consumed");
    let mut processor = processor;
    assert!(processor.child.try_wait().expect("status").is_none(), "the processor exited:\n{}", processor.log_text());
    assert_eq!(processor.status("/healthz"), Some(200));
    let log = processor.log_text();
    assert!(!log.contains("panicked"), "a panic in the processor:\n{log}");
    erp.stop().await;
}

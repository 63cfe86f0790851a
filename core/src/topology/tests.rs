//! Validation of the shipped topology and of broken copies of it.

use std::path::{Path, PathBuf};

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shipped_text() -> String {
    std::fs::read_to_string(repo().join("topology.toml")).expect("read topology.toml")
}

/// Writes `text` as a topology next to a copy of the shipped schemas; returns (dir, topology path).
fn write_copy(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas = dir.path().join("schemas");
    std::fs::create_dir(&schemas).expect("mkdir");
    for entry in std::fs::read_dir(repo().join("schemas")).expect("schemas") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), schemas.join(entry.file_name())).expect("copy");
    }
    let machines = dir.path().join("machines");
    std::fs::create_dir(&machines).expect("mkdir");
    for entry in std::fs::read_dir(repo().join("machines")).expect("machines") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), machines.join(entry.file_name())).expect("copy");
    }
    let path = dir.path().join("topology.toml");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "planting needs exactly one {from:?}");
    text.replacen(from, to, 1)
}

#[test]
fn the_shipped_topology_is_valid() {
    let topology = Topology::load(&repo().join("topology.toml"), "").expect("valid");
    assert_eq!(topology.topics.len(), 14);
    assert_eq!(topology.contracts.len(), 17);
    let names: Vec<&str> = topology.processors.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["order-saga", "return-saga"]);
    let returns = topology.processors[1].machine.as_ref().expect("the declared machine, read");
    assert_eq!((returns.state.as_str(), returns.transitions.len()), ("return_state", 7));
    let state = topology.topic("orders.state").expect("state topic");
    assert!(state.cleanup_policy.is_compacted());
    let saga = &topology.processors[0];
    for input in &saga.inputs {
        let topic = topology.topics.iter().find(|t| &t.name == input).expect("input");
        assert_eq!(topic.partitions, state.partitions, "{input} co-partitioned with the state");
    }
}

#[test]
fn the_prefix_goes_before_every_topic_and_subject() {
    let topology = Topology::load(&repo().join("topology.toml"), "test1.").expect("valid");
    assert!(topology.topics.iter().all(|t| t.name.starts_with("test1.")));
    assert_eq!(topology.routes[0].topic, "test1.orders.inbound");
    let subjects: Vec<String> = topology.subjects().into_iter().map(|(s, _)| s).collect();
    assert!(subjects.contains(&"test1.orders.state-value".to_owned()), "{subjects:?}");
    assert!(
        subjects.contains(&"test1.orders.commands-io.interchange.orders.DispatchCommand".to_owned()),
        "{subjects:?}"
    );
}

#[test]
fn every_planted_error_is_reported_at_once() {
    let mut text = shipped_text();
    // 1. an unknown topic in a processor
    text = replace_once(
        &text,
        r#"inputs = ["orders.inbound", "orders.results"]"#,
        r#"inputs = ["orders.inbund", "orders.results"]"#,
    );
    // 2. inputs not co-partitioned
    text = replace_once(
        &text,
        "name = \"orders.results\"\ndoc = \"Outcome of each delivery attempt series, written by the sinks.\"\npartitions = 12",
        "name = \"orders.results\"\ndoc = \"Outcome of each delivery attempt series, written by the sinks.\"\npartitions = 6",
    );
    // 3. a state topic that is not compacted
    text = replace_once(
        &text,
        "key = \"correlation_id\"\ncleanup_policy = \"compact\"",
        "key = \"correlation_id\"\ncleanup_policy = \"delete\"",
    );
    // 4. an unknown partner
    text = replace_once(
        &text,
        "partners = [\"acme-erp\", \"globex-erp\"]\ncommands",
        "partners = [\"acme-erq\", \"globex-erp\"]\ncommands",
    );
    // 5. a missing schema file
    text = replace_once(&text, r#"schemas = ["inventory_level"]"#, r#"schemas = ["inventory_level", "stock_moved"]"#);
    let (dir, path) = write_copy(&text);
    // 6. a schema that does not parse
    std::fs::write(
        dir.path().join("schemas/dead_letter.avsc"),
        r#"{"type": "record", "name": "X", "fields": [{"name": "a"}]}"#,
    )
    .expect("write");

    let errors = Topology::load(&path, "").expect_err("broken").0;
    let has = |pred: &dyn Fn(&TopologyError) -> bool| errors.iter().any(pred);
    assert!(
        has(&|e| matches!(e, TopologyError::UnknownTopic { topic, field: "inputs", .. } if topic == "orders.inbund")),
        "{errors:#?}"
    );
    assert!(
        has(
            &|e| matches!(e, TopologyError::NotCoPartitioned { processor, partitions } if processor == "order-saga" && partitions.contains(&("orders.results".to_owned(), 6)))
        ),
        "{errors:#?}"
    );
    assert!(
        has(&|e| matches!(e, TopologyError::NotCompacted { field: "state", topic, .. } if topic == "orders.state")),
        "{errors:#?}"
    );
    assert!(
        has(&|e| matches!(e, TopologyError::UnknownPartner { partner, .. } if partner == "acme-erq")),
        "{errors:#?}"
    );
    assert!(
        has(
            &|e| matches!(e, TopologyError::SchemaMissing { schema, topic, .. } if schema == "stock_moved" && topic == "inventory.levels")
        ),
        "{errors:#?}"
    );
    assert!(
        has(&|e| matches!(e, TopologyError::SchemaInvalid { schema, .. } if schema == "dead_letter")),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), 6, "exactly the planted errors: {errors:#?}");
}

#[test]
fn sinks_serve_many_partners_and_each_command_has_one_sink() {
    let shipped = Topology::load(&repo().join("topology.toml"), "").expect("valid");
    let served = |name: &str| {
        shipped.sinks.iter().find(|s| s.name == name).map(|s| s.params.http_partners()).expect("sink").join(",")
    };
    assert_eq!(served("client-notify"), "acme-shop,globex-shop");
    assert_eq!(served("erp-dispatch"), "acme-erp,globex-erp");
    // The one-partner form is folded into `partners`.
    let one = replace_once(
        &shipped_text(),
        "partners = [\"acme-shop\", \"globex-shop\"]\ncommands",
        "partner = \"acme-shop\"\ncommands",
    );
    let (_dir, path) = write_copy(&one);
    let topology = Topology::load(&path, "").expect("the one-partner form is valid");
    let notify = topology.sinks.iter().find(|s| s.name == "client-notify").expect("sink");
    assert!(
        matches!(&notify.params, SinkParams::Http { partner: None, partners, .. } if partners == &["acme-shop"]),
        "{:?}",
        notify.params
    );

    let mut text = shipped_text();
    // 1. both forms at once
    text = replace_once(
        &text,
        "partners = [\"acme-erp\", \"globex-erp\"]\ncommands",
        "partner = \"acme-erp\"\npartners = [\"acme-erp\", \"globex-erp\"]\ncommands",
    );
    // 2. a partner without [partner.outbound], 3. an unknown one, 4. a second sink of the same
    // contract and topic serving acme-shop too (and 5. neither form).
    text.push_str(
        r#"
[[sink]]
name = "shop-notify-2"
input = "orders.commands"
results = "orders.results"
dead_letter = "orders.dlq"

[sink.params]
kind = "http"
partners = ["acme-shop", "inbound-only", "initech-shop"]
commands = ["notification_command"]

[[sink]]
name = "nobody"
input = "orders.commands"
results = "orders.results"
dead_letter = "orders.dlq"

[sink.params]
kind = "http"
commands = ["notification_command"]

[[partner]]
name = "inbound-only"

[partner.inbound]
api_keys = { env = "X" }
"#,
    );
    let (_dir, path) = write_copy(&text);
    let errors = Topology::load(&path, "").expect_err("broken").0;
    let has = |pred: &dyn Fn(&TopologyError) -> bool| errors.iter().any(pred);
    let exactly_one = |e: &TopologyError, sink: &str| {
        matches!(e, TopologyError::Invalid { owner, field: "params.partners", reason, .. }
            if owner == &format!("sink {sink:?}") && reason.contains("exactly one"))
    };
    assert!(has(&|e| exactly_one(e, "erp-dispatch")), "{errors:#?}");
    assert!(has(&|e| exactly_one(e, "nobody")), "{errors:#?}");
    assert!(
        has(&|e| matches!(e, TopologyError::PartnerNotCallable { partner, .. } if partner == "inbound-only")),
        "{errors:#?}"
    );
    assert!(
        has(
            &|e| matches!(e, TopologyError::UnknownPartner { partner, field: "params.partners", .. } if partner == "initech-shop")
        ),
        "{errors:#?}"
    );
    assert!(
        has(&|e| matches!(e, TopologyError::SinksOverlap { first, second, contract, topic, partners }
            if first == "client-notify" && second == "shop-notify-2" && contract == "notification_command"
                && topic == "orders.commands" && partners == &["acme-shop"])),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), 5, "exactly the planted errors: {errors:#?}");
}

#[test]
fn duplicates_bad_values_and_key_mismatch_are_reported() {
    let mut text = shipped_text();
    text = replace_once(&text, "name = \"orders.dlq\"", "name = \"orders.events\"");
    text = replace_once(&text, "partitions = 6\nkey = \"sku\"", "partitions = 0\nkey = \"sku\"");
    text = replace_once(
        &text,
        "doc = \"Outcome of each delivery attempt series, written by the sinks.\"\npartitions = 12\nkey = \"correlation_id\"",
        "doc = \"Outcome of each delivery attempt series, written by the sinks.\"\npartitions = 12\nkey = \"order_id\"",
    );
    text = replace_once(&text, "base_url = \"http://127.0.0.1:18082\"", "base_url = \"ftp://erp\"");
    text = replace_once(
        &text,
        "[partner.outbound.requests.cancel_command]\nmethod = \"POST\"\npath = \"/orders/{order_id}/cancel\"",
        "[partner.outbound.requests.cancel_command]\nmethod = \"SEND\"\npath = \"orders/{order_id/cancel\"\n\n[partner.outbound.requests.rebate_command]\npath = \"/rebates\"",
    );
    text = replace_once(&text, "terminal_retention = \"7d\"", "terminal_retention = \"500ms\"");
    let (_dir, path) = write_copy(&text);
    let errors = Topology::load(&path, "").expect_err("broken").0;
    let has = |pred: &dyn Fn(&TopologyError) -> bool| errors.iter().any(pred);
    assert!(
        has(&|e| matches!(e, TopologyError::Duplicate { kind: "topic", name } if name == "orders.events")),
        "{errors:#?}"
    );
    assert!(has(&|e| matches!(e, TopologyError::Invalid { field: "partitions", .. })), "{errors:#?}");
    assert!(
        has(&|e| matches!(e, TopologyError::KeyMismatch { processor, .. } if processor == "order-saga")),
        "{errors:#?}"
    );
    assert!(has(&|e| matches!(e, TopologyError::Invalid { field: "outbound.base_url", .. })), "{errors:#?}");
    for field in ["outbound.requests", "outbound.requests.method", "outbound.requests.path"] {
        assert!(has(&|e| matches!(e, TopologyError::Invalid { field: f, .. } if *f == field)), "{field}: {errors:#?}");
    }
    assert!(has(&|e| matches!(e, TopologyError::Invalid { field: "params.terminal_retention", .. })), "{errors:#?}");
}

#[test]
fn every_partner_of_the_per_shop_erp_map_is_checked_at_once() {
    // The shipped map's entry (globex-shop = "globex-erp") stays valid beside the planted ones.
    let text = replace_once(
        &shipped_text(),
        "[processor.params.erp_partner_by_shop]\n",
        "[processor.params.erp_partner_by_shop]\n\"nobody-shop\" = \"acme-erp\"\n\"acme-shop\" = \"nobody-erp\"\n\"acme-erp\" = \"bare-erp\"\n",
    ) + "\n[[partner]]\nname = \"bare-erp\"\n";
    let text = replace_once(&text, "max_batch = 500", "max_batch = 0");
    let (_dir, path) = write_copy(&text);
    let errors = Topology::load(&path, "").expect_err("broken").0;
    let field = "params.erp_partner_by_shop";
    let unknown = |name: &str| {
        errors.iter().any(
            |e| matches!(e, TopologyError::UnknownPartner { field: f, partner, .. } if *f == field && partner == name),
        )
    };
    assert!(unknown("nobody-shop"), "an unknown shop: {errors:#?}");
    assert!(unknown("nobody-erp"), "an unknown ERP: {errors:#?}");
    assert!(
        errors.iter().any(|e| matches!(e, TopologyError::PartnerNotCallable { partner, .. } if partner == "bare-erp")),
        "an ERP without [partner.outbound]: {errors:#?}"
    );
    assert!(errors.iter().any(|e| matches!(e, TopologyError::Invalid { field: "max_batch", .. })), "{errors:#?}");
    let shown = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert_eq!(errors.len(), 4, "exactly the planted errors: {errors:#?}");
    assert!(
        shown.contains("processor \"order-saga\": params.erp_partner_by_shop names unknown partner \"nobody-erp\""),
        "{shown}"
    );
}

#[test]
fn a_syntax_error_names_the_file_and_position() {
    let (_dir, path) = write_copy("[[topic]\nname = 1");
    let errors = Topology::load(&path, "").expect_err("broken").0;
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(text.contains("topology.toml") && text.contains("line 1"), "{text}");
}

#[test]
fn unknown_fields_are_refused() {
    let text = replace_once(&shipped_text(), "max_batch = 500", "max_batch = 500\nmax_batchh = 1");
    let (_dir, path) = write_copy(&text);
    let errors = Topology::load(&path, "").expect_err("typo").0;
    assert!(errors[0].to_string().contains("max_batchh"), "{errors:?}");
}

#[test]
fn the_commit_policy_is_interval_unless_told_and_an_unknown_one_is_named() {
    let shipped = Topology::load(&repo().join("topology.toml"), "").expect("shipped");
    assert_eq!(shipped.processors[0].commit, CommitPolicy::Interval);
    let text = replace_once(&shipped_text(), "commit = \"interval\"\n", "");
    let (_dir, path) = write_copy(&text);
    assert_eq!(Topology::load(&path, "").expect("default").processors[0].commit, CommitPolicy::Interval);
    let text = replace_once(&shipped_text(), "commit = \"interval\"", "commit = \"adaptive\"");
    let (_dir, path) = write_copy(&text);
    assert_eq!(Topology::load(&path, "").expect("adaptive").processors[0].commit, CommitPolicy::Adaptive);
    let text = replace_once(&shipped_text(), "commit = \"interval\"", "commit = \"sometimes\"");
    let (_dir, path) = write_copy(&text);
    let shown = Topology::load(&path, "").expect_err("unknown").0.iter().map(ToString::to_string).collect::<String>();
    assert!(shown.contains("sometimes") && shown.contains("adaptive"), "{shown}");
}

/// The shipped topology with the test fixture's second processor (topics `orders-b.*`).
fn with_second_processor() -> String {
    let fixture = std::fs::read_to_string(repo().join("tests/fixtures/second-processor.toml")).expect("fixture");
    format!("{}\n{fixture}", shipped_text())
}

#[test]
fn two_processors_load_and_a_state_topic_belongs_to_one_of_them() {
    let (_dir, path) = write_copy(&with_second_processor());
    let topology = Topology::load(&path, "p.").expect("two processors");
    let names: Vec<&str> = topology.processors.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["order-saga", "return-saga", "order-saga-b"]);
    assert_eq!(topology.processors[2].state, "p.orders-b.state");
    assert_eq!(topology.processors[2].commit, CommitPolicy::Adaptive);

    // Sharing the first's state topic, and writing to it: both reported, with the others.
    let text = replace_once(&with_second_processor(), "state = \"orders-b.state\"", "state = \"orders.state\"");
    let text = replace_once(
        &text,
        "outputs = [\"orders-b.commands\", \"orders-b.events\"]",
        "outputs = [\"orders-b.commands\", \"orders-b.events\", \"orders.state\"]",
    );
    let (_dir, path) = write_copy(&text);
    let errors = Topology::load(&path, "").expect_err("shared state").0;
    let state_errors: Vec<String> = errors
        .iter()
        .filter(|e| matches!(e, TopologyError::Invalid { field: "state", .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(state_errors.len(), 3, "{errors:#?}");
    assert!(
        state_errors.iter().any(|e| e.contains("already the state of processor \"order-saga\"")),
        "{state_errors:#?}"
    );
    let written = state_errors.iter().filter(|e| e.contains("processor \"order-saga-b\" writes to it")).count();
    assert_eq!(written, 2, "both processors keeping orders.state are told: {state_errors:#?}");
}

#[test]
fn every_problem_of_a_declared_machine_is_reported_at_once() {
    let text =
        replace_once(&shipped_text(), "payment_partner = \"payflow\"", "payment_partner = \"payflow\"\npayee = \"x\"");
    let (dir, path) = write_copy(&text);
    let machine = dir.path().join("machines/return_saga.toml");
    let mut text = std::fs::read_to_string(&machine).expect("machine");
    for (from, to) in [
        ("when = \"event.amount > 0\"", "when = \"event.amont > 0\""),
        ("amount = \"state.amount\"\ncurrency = \"state.currency\"\nissued_at = \"now\"", "currency = \"state.currency\"\nissued_at = \"now\"\nbonus = \"1\""),
        ("from = \"INSPECTING\"\non = \"timer\"", "from = \"DECLINED\"\non = \"timer\""),
        ("to = \"REFUNDED\"\n", "to = \"REFUNDD\"\n"),
        ("states = [\"INSPECTING\",", "states = [\"LIMBO\", \"INSPECTING\","),
        ("refund_reference = \"event.partner_reference\"", "refund_reference = \"lookup(key).x\"\nversion = \"1\""),
        ("'DECLINED' and event.return_id", "'DECLIND' and event.return_id"),
        ("refund_command_id = \"derive('refund')\"", "refund_command_id = \"derive('refund')\"\ncreated_at = \"'yesterday'\""),
        ("shop = \"state.shop\"", "shop = \"state.version\""),
        ("param.payment_partner and event.outcome == 'DELIVERED'\"", "param.payment_partner and state.amount\""),
        ("partner = \"param.payment_partner\"", "partner = \"param.payment_partnr\""),
        ("and event.outcome != 'DELIVERED'", "and event.attempts == 'many'"),
        ("reason = \"state.failure\"\n\n# ----------------------------------------------------------------- inspecting", "reason = \"state.failure\"\nbroken = \"concat('a'\"\n\n# ----------------------------------------------------------------- inspecting"),
    ] {
        text = replace_once(&text, from, to);
    }
    std::fs::write(&machine, text).expect("write");
    let errors = Topology::load(&path, "").expect_err("broken").0;
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expected = [
        "transition 1 (NEW --return_requested--> INSPECTING): when: \"event.amont > 0\" names an unknown field: return_requested has no field \"amont\"",
        "emit refund_command: refund_command has no default, so it must be mapped: amount",
        "emit refund_command: refund_command has no field \"bonus\"",
        "transition 5 (DECLINED --timer--> EXPIRED): DECLINED is terminal: no transition leaves it",
        "(REFUNDING --delivery_result--> REFUNDD): to \"REFUNDD\" is not one of the states",
        "set.refund_reference: \"lookup(key).x\" reads x but there is no lookup table: the processor has no lookups",
        "set.version: kept by the processor, not set by a transition",
        "payload_json.broken: \"concat('a'\" does not parse: at 10: expected ')'",
        "states: return_state's status enum has no symbol LIMBO",
        "state LIMBO: unreachable: no chain of transitions leads from NEW to it",
        "state LIMBO: no transition leaves it and it is not terminal",
        "state INSPECTING: a transition sets a timer into it but none is on \"timer\" from it",
        "state REFUNDED: unreachable",
        "state DECLINED: a transition is on \"timer\" from it but none into it sets a timer",
        "\"event.verdict == 'DECLIND' and event.return_id == state.return_id\" \"DECLIND\" is not one of the enum's symbols (UNKNOWN, APPROVED, DECLINED)",
        "set.created_at: \"'yesterday'\": \"yesterday\" cannot be written to a field of a number (return_state.created_at)",
        "emit refund_command: shop: \"state.version\": a number cannot be written to a field of a text (refund_command.shop)",
        "and state.amount\" is not a condition: a guard compares, or is a boolean",
        "event.attempts == 'many'\" compares a number with a text: it never holds",
        "emit refund_command: partner: \"param.payment_partnr\" reads param.payment_partnr, which the processor's params.values does not set ([\"payee\", \"payment_partner\"])",
        "params: the processor's params.values sets \"payee\" but no expression reads it",
    ];
    for part in expected {
        assert!(shown.iter().any(|s| s.contains(part)), "missing {part:?} in {shown:#?}");
    }
    assert!(shown.iter().all(|s| s.starts_with("processor \"return-saga\": machine ")), "{shown:#?}");
    assert_eq!(shown.len(), expected.len(), "exactly the planted problems: {shown:#?}");
}

#[test]
fn every_problem_of_the_declared_order_saga_is_reported_at_once() {
    let text = replace_once(
        &shipped_text(),
        "# machine = \"machines/order_saga.toml\"",
        "machine = \"machines/order_saga.toml\"",
    );
    let (dir, path) = write_copy(&text);
    Topology::load(&path, "").expect("the order saga declared, as shipped, is valid");
    let machine = dir.path().join("machines/order_saga.toml");
    let mut text = std::fs::read_to_string(&machine).expect("machine");
    for (from, to) in [
        ("l.unit_price * l.quantity", "l.unit_prize * l.quantity"),
        ("when = \"def.refusal != null\"", "when = \"def.refusals != null\""),
        ("[define]\n", "[define]\nunused = \"key\"\n"),
        ("kind = \"unknown_command\"", "kind = \"unknown command\""),
        ("via = [\"SENT_TO_PARTNER\"]", "via = [\"REJECTED\"]"),
        ("[transition.history]\nREJECTED =", "[transition.history]\nVALIDATED ="),
        ("timer = \"param.dispatch_deadline\"", "timer = \"param.erp_partner\""),
        ("param.erp_partner_by_shop[event.partner]", "param.erp_partner_by_shop"),
        ("first(l in event.items where l.quantity < 1", "first(l in event.currency where l.quantity < 1"),
        ("total = \"def.subtotal - def.discount\"", "total = \"def.subtotal - state.currency\""),
    ] {
        text = replace_once(&text, from, to);
    }
    std::fs::write(&machine, text).expect("write");
    let errors = Topology::load(&path, "").expect_err("broken").0;
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expected = [
        "define.subtotal (on order_received): \"sum(l in event.items, l.unit_prize * l.quantity)\" names an unknown field: l has no field \"unit_prize\" (it has sku, quantity, unit_price)",
        "transition 1 (NEW --order_received--> REJECTED): when: \"def.refusals != null\": def.refusals is not defined",
        "define.unused: defined but no expression reads def.unused",
        "refuse 8 (on delivery_result): kind \"unknown command\" is a metric label: lower-case letters and _",
        "(VALIDATED --delivery_result--> COMPLETED): via \"REJECTED\" is terminal: a transition cannot pass through it",
        "state SENT_TO_PARTNER: unreachable",
        "state SENT_TO_PARTNER: no transition leaves it and it is not terminal",
        "history.VALIDATED: the transition does not step into it (its via or its to)",
        "timer \"acme-erp\" (param.erp_partner) is not a duration",
        "params: the processor's params.values sets \"dispatch_deadline\" but no expression reads it",
        "define.erp (on order_received): \"coalesce(param.erp_partner_by_shop, param.erp_partner)\" reads param.erp_partner_by_shop, a table: read an entry, as param.name[key]",
        "goes through l as a list, but it is a text",
        "set.total: \"def.subtotal - state.currency\" computes with a text: arithmetic takes numbers and amounts",
    ];
    for part in expected {
        assert!(shown.iter().any(|s| s.contains(part)), "missing {part:?} in {shown:#?}");
    }
    assert!(shown.iter().all(|s| s.starts_with("processor \"order-saga\": machine ")), "{shown:#?}");
    assert_eq!(shown.len(), expected.len(), "exactly the planted problems: {shown:#?}");
}

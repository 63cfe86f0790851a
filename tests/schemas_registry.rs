//! `hub schemas check|register` against the real schema registry of the local stack (Apicurio, Confluent API).

mod common;

use common::{hub, registry_url, text, unique_prefix, TopologyCopy};

async fn get_json(path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{}{path}", registry_url())).await.expect("registry answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// Edits `schemas/order_state.avsc` in `copy` by adding `field` before the last field.
fn add_state_field(copy: &TopologyCopy, field: &str) {
    let path = copy.schema_path("order_state");
    let text = std::fs::read_to_string(&path).expect("read");
    let anchor = r#"    {"name": "updated_at""#;
    assert_eq!(text.matches(anchor).count(), 1);
    std::fs::write(&path, text.replacen(anchor, &format!("    {field},\n{anchor}"), 1)).expect("write");
}

fn run(prefix: &str, copy: Option<&TopologyCopy>, command: &str) -> (bool, String, String) {
    let mut args = vec!["--topic-prefix", prefix, "schemas", command];
    if let Some(copy) = copy {
        args.splice(0..0, ["--topology", copy.arg()]);
    }
    let output = hub(&args);
    let (out, err) = text(&output);
    (output.status.success(), out, err)
}

#[tokio::test]
async fn every_shipped_schema_registers_with_backward_compatibility() {
    let prefix = unique_prefix("schemas");
    let (ok, out, err) = run(&prefix, None, "register");
    assert!(ok, "{out}{err}");
    assert!(out.contains("19 registered, 0 unchanged, compatibility BACKWARD"), "{out}");

    // Every subject of the topology holds exactly one version (the registry's subject list is
    // paginated on a busy registry, so ask each subject).
    let topology =
        interchange_core::topology::Topology::load(&common::repo().join("topology.toml"), &prefix).expect("topology");
    let subjects = topology.subjects();
    assert_eq!(subjects.len(), 19);
    for (subject, _) in &subjects {
        let (status, versions) = get_json(&format!("/subjects/{subject}/versions")).await;
        assert_eq!((status, versions), (200, serde_json::json!([1])), "{subject}");
    }
    let ours: Vec<&str> = subjects.iter().map(|(s, _)| s.as_str()).collect();
    for subject in [
        format!("{prefix}orders.state-value"),
        format!("{prefix}orders.commands-io.interchange.orders.DispatchCommand"),
        format!("{prefix}orders.commands-io.interchange.orders.NotificationCommand"),
    ] {
        assert!(ours.contains(&subject.as_str()), "{subject} in {ours:?}");
        let (status, config) = get_json(&format!("/config/{subject}")).await;
        assert_eq!(status, 200, "{config}");
        assert_eq!(config["compatibilityLevel"], "BACKWARD", "{config}");
    }

    // A data team's Confluent deserializer finds the schema by id: the registered text is our contract.
    let (status, latest) = get_json(&format!("/subjects/{prefix}orders.state-value/versions/latest")).await;
    assert_eq!(status, 200);
    let schema: serde_json::Value =
        serde_json::from_str(latest["schema"].as_str().expect("schema text")).expect("json");
    assert_eq!(schema["name"], "OrderState");
    assert_eq!(schema["namespace"], "io.interchange.orders");
    let deadline =
        schema["fields"].as_array().expect("fields").iter().find(|f| f["name"] == "deadline").expect("deadline");
    assert!(deadline["default"].is_null() && deadline.get("default").is_some(), "defaults kept: {deadline}");
    assert_eq!(deadline["type"][1]["logicalType"], "timestamp-millis", "logical types kept: {deadline}");
    assert!(deadline["doc"].is_string(), "docs kept: {deadline}");

    let (ok, out, err) = run(&prefix, None, "register");
    assert!(ok, "{out}{err}");
    assert!(out.contains("0 registered, 19 unchanged"), "a second run registers nothing:\n{out}");
}

#[tokio::test]
async fn an_incompatible_edit_is_refused_and_a_compatible_one_registers() {
    let prefix = unique_prefix("compat");
    let (ok, out, err) = run(&prefix, None, "register");
    assert!(ok, "{out}{err}");
    let subject = format!("{prefix}orders.state-value");

    // A new required field: readers on the new schema could not read records already written.
    let breaking = TopologyCopy::new(&[]);
    add_state_field(&breaking, r#"{"name": "warehouse", "type": "string", "doc": "Required, no default."}"#);
    let (ok, out, err) = run(&prefix, Some(&breaking), "check");
    assert!(!ok, "check fails on an incompatible edit:\n{out}{err}");
    assert!(err.contains(&format!("{subject}: INCOMPATIBLE")), "{err}");
    assert!(err.contains("1 contract(s) incompatible; nothing registered"), "{err}");

    let (ok, out, err) = run(&prefix, Some(&breaking), "register");
    assert!(!ok, "register refuses an incompatible edit:\n{out}{err}");
    assert!(err.contains("INCOMPATIBLE"), "{err}");
    assert!(err.contains("HTTP 409") && err.contains("warehouse"), "the registry's reason is shown:\n{err}");
    let (_, versions) = get_json(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(versions, serde_json::json!([1]), "nothing was registered");

    // The registry itself refuses it too, when asked directly (not only our pre-check).
    let (_, latest) = get_json(&format!("/subjects/{subject}/versions/latest")).await;
    let mut edited: serde_json::Value = serde_json::from_str(latest["schema"].as_str().expect("schema")).expect("json");
    edited["fields"].as_array_mut().expect("fields").push(serde_json::json!({"name": "warehouse", "type": "string"}));
    let response = reqwest::Client::new()
        .post(format!("{}/subjects/{subject}/versions", registry_url()))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .body(serde_json::json!({ "schema": edited.to_string() }).to_string())
        .send()
        .await
        .expect("registry answers");
    assert_eq!(response.status().as_u16(), 409, "{:?}", response.text().await);

    // An optional field with a default is a compatible evolution.
    let evolving = TopologyCopy::new(&[]);
    add_state_field(
        &evolving,
        r#"{"name": "warehouse", "type": ["null", "string"], "default": null, "doc": "Optional."}"#,
    );
    let (ok, out, err) = run(&prefix, Some(&evolving), "register");
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("{subject}: compatible new version")), "{out}");
    assert!(out.contains("1 registered, 18 unchanged"), "{out}");
    let (_, versions) = get_json(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(versions, serde_json::json!([1, 2]));
}

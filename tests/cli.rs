//! The `hub` command line without services: help and offline topology checks.

mod common;

use common::{hub, text, TopologyCopy};

#[test]
fn help_lists_every_role_and_tool() {
    let (out, _) = text(&hub(&["--help"]));
    for command in ["run", "ingest", "process", "sink", "topology", "schemas", "probe"] {
        assert!(out.contains(&format!("  {command} ")), "{command} missing from:\n{out}");
    }
    // The load generators are hub-bench's (bench/tests/cli.rs), not the production binary's.
    assert!(!out.contains("  bench "), "hub has no bench subcommand:\n{out}");
    let (out, _) = text(&hub(&["topology", "--help"]));
    for command in ["check", "apply", "describe", "render"] {
        assert!(out.contains(&format!("  {command} ")), "{command} missing from:\n{out}");
    }
    let (out, _) = text(&hub(&["schemas", "--help"]));
    for command in ["check", "register"] {
        assert!(out.contains(&format!("  {command} ")), "{command} missing from:\n{out}");
    }
    assert!(out.contains("[env: HUB_REGISTRY_URL="), "options document their environment variable:\n{out}");
    // Every subcommand's options parse (clap checks for clashing names when asked for help).
    for args in [&["run", "--help"][..], &["ingest", "--help"], &["process", "--help"], &["sink", "--help"]] {
        let output = hub(args);
        let (out, err) = text(&output);
        assert!(output.status.success(), "hub {args:?}:\n{out}{err}");
    }
    let (out, _) = text(&hub(&["run", "--help"]));
    assert!(out.contains("--listen") && out.contains("--processor-listen") && out.contains("--instance-id"), "{out}");
}

#[test]
fn the_shipped_topology_checks_clean() {
    let output = hub(&["topology", "check"]);
    let (out, err) = text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert!(out.contains("ok: 14 topics, 17 contracts, 2 routes, 2 processors, 5 sinks"), "{out}");
}

#[test]
fn an_unknown_field_is_named_by_stage_one() {
    let copy = TopologyCopy::new(&[("name = \"orders.state\"\ndoc", "name = \"orders.state\"\npartitons = 1\ndoc")]);
    let output = hub(&["--topology", copy.arg(), "topology", "check"]);
    let (_, err) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(err.contains("partitons") && err.contains("line"), "names the field and its place:\n{err}");
}

#[test]
fn a_broken_topology_lists_every_planted_error_and_fails() {
    let copy = TopologyCopy::new(&[
        (r#"inputs = ["orders.inbound", "orders.results"]"#, r#"inputs = ["orders.inbound", "orders.resultz"]"#),
        (
            "key = \"correlation_id\"\ncleanup_policy = \"compact\"",
            "key = \"correlation_id\"\ncleanup_policy = \"delete\"",
        ),
        (
            "partners = [\"acme-shop\", \"globex-shop\"]\ncommands",
            "partners = [\"acme-shopp\", \"globex-shop\"]\ncommands",
        ),
        (
            "written by the sinks.\"\npartitions = 12\nkey = \"correlation_id\"\ncleanup_policy = \"delete\"\nretention = \"7d\"\nschemas = [\"delivery_result\"]",
            "written by the sinks.\"\npartitions = 12\nkey = \"correlation_id\"\ncleanup_policy = \"delete\"\nretention = \"7d\"\nschemas = [\"delivery_result\", \"delivery_receipt\"]",
        ),
    ]);
    std::fs::write(copy.schema_path("order_rejected"), "{ not json").expect("write");
    let output = hub(&["--topology", copy.arg(), "topology", "check"]);
    let (out, err) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("5 errors in the topology"), "{err}");
    for planted in [
        r#"processor "order-saga": inputs names unknown topic "orders.resultz""#,
        r#"processor "order-saga": state topic "orders.state" must be compacted"#,
        r#"sink "client-notify": params.partners names unknown partner "acme-shopp""#,
        r#"topic "orders.results": schema "delivery_receipt" has no file"#,
        r#"schema "order_rejected""#,
    ] {
        assert!(err.contains(planted), "missing {planted:?} in:\n{err}");
    }
}

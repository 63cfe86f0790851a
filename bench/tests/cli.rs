//! The `hub-bench` command line without services: every load generator is there and its options
//! parse (clap checks for clashing names when asked for help).

use std::process::{Command, Output};

fn hub_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hub-bench")).args(args).env("RUST_LOG", "warn").output().expect("run hub-bench")
}

#[test]
fn help_lists_every_bench_and_their_options_parse() {
    let output = hub_bench(&["--help"]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    for command in ["ingest", "process", "project", "sink", "flow"] {
        assert!(out.contains(&format!("  {command} ")), "{command} missing from:\n{out}");
    }
    assert!(out.contains("[env: HUB_BOOTSTRAP_SERVERS="), "the hub's global options, with their variables:\n{out}");
    for command in ["ingest", "process", "project", "sink", "flow"] {
        let output = hub_bench(&[command, "--help"]);
        let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "hub-bench {command} --help:\n{out}{err}");
    }
    let out = String::from_utf8_lossy(&hub_bench(&["flow", "--help"]).stdout).into_owned();
    assert!(out.contains("--rate") && out.contains("--find-max") && out.contains("--plot"), "{out}");
}

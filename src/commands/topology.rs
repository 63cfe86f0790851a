//! `hub topology check|apply|describe|render`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use interchange_core::cli::Global;
use interchange_core::kafka::admin::{plan, Admin, PlanOptions};
use interchange_core::topology::{render, Topology};

use super::{kafka, load};

#[derive(Debug, Subcommand)]
pub enum TopologyCommand {
    /// Validate the topology and its contracts offline; lists every error at once.
    Check,
    /// Create missing topics, raise partition counts and fix configs; refuses unsafe changes.
    Apply(ApplyArgs),
    /// Draw each processor's machine, then show declared against actual for every topic.
    Describe(ApplyArgs),
    /// Render the topics as resources for another tool (deterministic; never edit the output).
    Render(RenderArgs),
}

/// What `hub topology render` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderTarget {
    /// Strimzi `KafkaTopic` resources (kafka.strimzi.io/v1), one per topic.
    Strimzi,
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// The format to render.
    #[arg(value_enum)]
    pub target: RenderTarget,
    /// Name of the Strimzi `Kafka` cluster (the `strimzi.io/cluster` label).
    #[arg(long, default_value = "interchange")]
    pub cluster: String,
    /// Where to write: `-` for stdout, a directory (writes `topics.yaml` in it) or a file.
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// Lower replication factor and min.insync.replicas to the broker count (development clusters).
    #[arg(long, env = "HUB_ALLOW_FEWER_REPLICAS")]
    pub allow_fewer_replicas: bool,
    /// Print the plan without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(global: &Global, cmd: TopologyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TopologyCommand::Check => Ok(check(global)),
        TopologyCommand::Apply(args) => apply(global, &args).await,
        TopologyCommand::Describe(args) => describe(global, &args).await,
        TopologyCommand::Render(args) => render(global, &args),
    }
}

/// Writes the rendering to stdout, into `<dir>/topics.yaml` or into the file named.
fn render(global: &Global, args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    // The file name only, so the output is the same wherever the command runs.
    let source = global.topology.file_name().map_or_else(|| "topology.toml".into(), |n| n.to_string_lossy());
    let text = match args.target {
        RenderTarget::Strimzi => render::strimzi_topics(&topology, &args.cluster, &source),
    };
    if args.out.as_os_str() == "-" {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let path = if args.out.is_dir() { args.out.join("topics.yaml") } else { args.out.clone() };
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {} ({} topics)", path.display(), topology.topics.len());
    Ok(ExitCode::SUCCESS)
}

fn check(global: &Global) -> ExitCode {
    match Topology::load(&global.topology, &global.topic_prefix) {
        Ok(t) => {
            println!(
                "{}: ok: {} topics, {} contracts, {} routes, {} processors, {} sinks, {} partners",
                global.topology.display(),
                t.topics.len(),
                t.contracts.len(),
                t.routes.len(),
                t.processors.len(),
                t.sinks.len(),
                t.partners.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{}: {errors}", global.topology.display());
            ExitCode::FAILURE
        }
    }
}

async fn apply(global: &Global, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let admin = Admin::new(&kafka(global)?)?;
    let names: Vec<String> = topology.topics.iter().map(|t| t.name.clone()).collect();
    let cluster = admin.cluster_state(&names).await.context("reading the cluster")?;
    let plan = plan(&topology, &cluster, PlanOptions { allow_fewer_replicas: args.allow_fewer_replicas });
    for note in &plan.notes {
        println!("note: {note}");
    }
    if !plan.refusals.is_empty() {
        eprintln!("refused, nothing changed ({} unsafe change(s)):", plan.refusals.len());
        for refusal in &plan.refusals {
            eprintln!("  - {refusal}");
        }
        return Ok(ExitCode::FAILURE);
    }
    if plan.changes.is_empty() {
        println!("no change: all {} topics match {}", topology.topics.len(), global.topology.display());
        return Ok(ExitCode::SUCCESS);
    }
    for change in &plan.changes {
        println!("{}{change}", if args.dry_run { "would " } else { "" });
    }
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    admin.apply(&plan.changes).await.context("applying the topology")?;
    println!("applied {} change(s)", plan.changes.len());
    Ok(ExitCode::SUCCESS)
}

async fn describe(global: &Global, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    print!("{}", processors(&topology));
    let admin = Admin::new(&kafka(global)?)?;
    let names: Vec<String> = topology.topics.iter().map(|t| t.name.clone()).collect();
    let cluster = admin.cluster_state(&names).await.context("reading the cluster")?;
    let plan = plan(&topology, &cluster, PlanOptions { allow_fewer_replicas: args.allow_fewer_replicas });
    println!("cluster: {} broker(s) at {}", cluster.brokers, global.bootstrap_servers);
    println!(
        "{:<32} {:>11} {:>9} {:>16} {:>14} {:>9}  status",
        "topic", "partitions", "replicas", "cleanup.policy", "retention.ms", "min.isr"
    );
    for topic in &topology.topics {
        let desired = topic.kafka_configs();
        let actual = cluster.topics.get(&topic.name);
        let pair = |declared: String, actual: Option<String>| match actual {
            Some(a) if a == declared => declared,
            Some(a) => format!("{declared}/{a}"),
            None => format!("{declared}/-"),
        };
        // Undeclared configs take the broker default: show what the cluster has.
        let config = |key: &str| {
            let actual = actual.and_then(|a| a.configs.get(key).cloned());
            match desired.get(key) {
                Some(declared) => (declared.clone(), actual),
                None => (actual.clone().unwrap_or_else(|| "default".to_owned()), actual),
            }
        };
        let (policy, actual_policy) = config("cleanup.policy");
        let (retention, actual_retention) = config("retention.ms");
        let (min_isr, actual_min_isr) = config("min.insync.replicas");
        let status = match actual {
            None => "missing".to_owned(),
            Some(_) => {
                let touched = plan.changes.iter().any(|c| format!("{c}").contains(&format!(" {}", topic.name)))
                    || plan.refusals.iter().any(|r| format!("{r}").starts_with(&topic.name));
                if touched {
                    "drift".to_owned()
                } else {
                    "ok".to_owned()
                }
            }
        };
        println!(
            "{:<32} {:>11} {:>9} {:>16} {:>14} {:>9}  {status}",
            topic.name,
            pair(topic.partitions.to_string(), actual.map(|a| a.partitions.to_string())),
            pair(topic.replication_factor.to_string(), actual.map(|a| a.replication_factor.to_string())),
            pair(policy, actual_policy),
            pair(retention, actual_retention),
            pair(min_isr, actual_min_isr),
        );
    }
    println!("(declared/actual where they differ; run `hub topology apply` to reconcile)");
    for change in &plan.changes {
        println!("pending: {change}");
    }
    for refusal in &plan.refusals {
        println!("unsafe: {refusal}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Each processor with what it reads and writes and, for a declared one, its machine drawn.
fn processors(topology: &Topology) -> String {
    use interchange_core::topology::machine::draw;
    use interchange_core::topology::ProcessorParams;
    let mut out = String::new();
    for p in &topology.processors {
        let kind = match &p.params {
            ProcessorParams::OrderSaga { machine: None, .. } => "order_saga (coded)".to_owned(),
            ProcessorParams::OrderSaga { machine: Some(machine), .. } => {
                format!("order_saga, declared in {}", machine.display())
            }
            ProcessorParams::Declared { machine, .. } => format!("declared in {}", machine.display()),
        };
        out.push_str(&format!("processor {}: {kind}\n", p.name));
        out.push_str(&format!(
            "  reads {} -> state {} -> writes {}\n",
            p.inputs.join(", "),
            p.state,
            p.outputs.join(", ")
        ));
        if let Some(spec) = &p.machine {
            out.push_str(&draw::text(spec, "  "));
        }
    }
    out
}

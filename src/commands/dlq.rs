//! `hub dlq list|replay`: inspect dead letters and re-publish them to where they came from.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use interchange_core::cli::Global;
use interchange_sinks::replay::{self, Filter, Letter};

use super::{kafka, load};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Show the dead letters that match (one line each, or JSON lines).
    List(DlqListArgs),
    /// Re-publish the matching dead letters' original records (same key, value, headers and event
    /// id, so partners' idempotency holds) to their source topics.
    Replay(DlqReplayArgs),
}

/// Which dead letters.
#[derive(Debug, Clone, Args)]
pub struct DlqFilterArgs {
    /// Dead-letter topic as declared in the topology (repeatable); default: every one in use.
    #[arg(long)]
    pub topic: Vec<String>,
    /// Only those a sink gave up on for this partner.
    #[arg(long)]
    pub partner: Option<String>,
    /// Only this order (the record key).
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Only from this stage, e.g. sink:erp-dispatch or processor:order-saga.
    #[arg(long)]
    pub stage: Option<String>,
    /// Dead-lettered at or after: an RFC 3339 time or a duration ago (2h, 30m).
    #[arg(long)]
    pub since: Option<String>,
    /// Dead-lettered before: an RFC 3339 time or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this reason (error class): PERMANENT, EXHAUSTED, UNDECODABLE, ...
    #[arg(long = "class")]
    pub error_class: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DlqListArgs {
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DlqReplayArgs {
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// Show what would be re-published and send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--since`/`--until`: an RFC 3339 time, or a duration meaning that long ago (`2h`, `30m`).
fn instant_ms(text: &str) -> anyhow::Result<i64> {
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(t) => t,
        Err(_) => {
            let ago = humantime::parse_duration(text)
                .with_context(|| format!("{text:?} is neither an RFC 3339 time nor a duration"))?;
            SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH)
        }
    };
    Ok(i64::try_from(at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis()).unwrap_or(i64::MAX))
}

fn filter(args: &DlqFilterArgs) -> anyhow::Result<Filter> {
    Ok(Filter {
        partner: args.partner.clone(),
        correlation_id: args.correlation_id.clone(),
        stage: args.stage.clone(),
        since_ms: args.since.as_deref().map(instant_ms).transpose()?,
        until_ms: args.until.as_deref().map(instant_ms).transpose()?,
        error_class: args.error_class.clone(),
    })
}

fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

fn print_table(letters: &[Letter]) {
    println!(
        "{:<28} {:<24} {:<22} {:<12} {:<10} {:<38} ERROR",
        "DEAD LETTER", "FAILED AT", "STAGE", "PARTNER", "CLASS", "CORRELATION ID"
    );
    for l in letters {
        let error: String = l.error.chars().take(100).collect();
        println!(
            "{:<28} {:<24} {:<22} {:<12} {:<10} {:<38} {error}",
            format!("{}/{}@{}", l.topic, l.partition, l.offset),
            time(l.failed_at),
            l.stage,
            l.partner.as_deref().unwrap_or("-"),
            l.error_class,
            l.correlation_id,
        );
    }
}

pub async fn run(global: &Global, cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let args = match &cmd {
        DlqCommand::List(a) => &a.filter,
        DlqCommand::Replay(a) => &a.filter,
    };
    // The dead-letter topics of every processor and sink, or those named.
    let mut topics: Vec<String> = Vec::new();
    if args.topic.is_empty() {
        topics.extend(topology.dead_letter_topics().into_iter().map(|t| t.name.clone()));
    }
    for name in &args.topic {
        let Some(topic) = topology.topic_named(name) else {
            bail!("no topic {name:?} in {}", global.topology.display());
        };
        if !topics.contains(&topic.name) {
            topics.push(topic.name.clone());
        }
    }
    let schema = &topology.contracts.get("dead_letter").context("the topology has no dead_letter contract")?.schema;
    let settings = kafka(global)?;
    let services = interchange_core::Services::new(settings.clone(), global.registry());
    let letters = replay::list(&services, schema, &topics, &filter(args)?).await?;
    match cmd {
        DlqCommand::List(list) => {
            if list.json {
                for letter in &letters {
                    println!("{}", serde_json::to_string(letter)?);
                }
            } else {
                print_table(&letters);
                eprintln!("{} dead letter(s) in {}", letters.len(), topics.join(", "));
            }
        }
        DlqCommand::Replay(r) => {
            // A record that is no dead letter has nothing to write back: skipped, and said so.
            let (letters, undecodable): (Vec<Letter>, Vec<Letter>) = letters.into_iter().partition(Letter::replayable);
            for l in &undecodable {
                eprintln!("skipping {}/{}@{}: {}", l.topic, l.partition, l.offset, l.error);
            }
            let skipped = if undecodable.is_empty() {
                String::new()
            } else {
                format!("; skipped {} undecodable record(s)", undecodable.len())
            };
            if r.dry_run {
                print_table(&letters);
                eprintln!(
                    "dry run: would re-publish {} record(s) to their source topics{skipped}; nothing sent",
                    letters.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let written = replay::replay(&settings, &letters).await?;
            for l in &letters {
                println!("{}/{}@{} -> {} ({})", l.topic, l.partition, l.offset, l.source_topic, l.correlation_id);
            }
            eprintln!("re-published {written} record(s) with their original keys, headers and event ids{skipped}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

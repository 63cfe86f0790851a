//! `hub schemas check|register`: every contract under its subject, BACKWARD compatible.

use std::process::ExitCode;

use clap::Subcommand;
use interchange_core::cli::Global;
use interchange_core::registry::Compatibility;

use super::load;

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Test every contract against the registry without registering.
    Check,
    /// Register every contract under its subject with BACKWARD compatibility.
    Register,
}

/// The compatibility rule set on every subject: consumers on the new schema read old records.
const COMPATIBILITY: &str = "BACKWARD";

pub async fn run(global: &Global, cmd: SchemasCommand) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let registry = global.registry().client()?;
    let subjects = topology.subjects();
    // Check everything first: register nothing when any contract is refused.
    let mut verdicts = Vec::new();
    let mut refused = 0;
    for (subject, contract) in &subjects {
        let verdict = registry.check(subject, &contract.text).await?;
        match &verdict {
            Compatibility::NewSubject => println!("{subject}: new subject ({})", contract.full_name),
            Compatibility::Registered { id, version } => println!("{subject}: unchanged (id {id}, version {version})"),
            Compatibility::Compatible => println!("{subject}: compatible new version"),
            Compatibility::Incompatible { messages } => {
                refused += 1;
                eprintln!("{subject}: INCOMPATIBLE with the registered version ({}):", contract.path.display());
                for message in messages {
                    eprintln!("    {message}");
                }
                if messages.is_empty() {
                    eprintln!("    (the registry's compatibility check gave no details)");
                }
            }
        }
        verdicts.push(verdict);
    }
    if refused > 0 {
        if matches!(cmd, SchemasCommand::Register) {
            // Some registries (Apicurio) give no reasons from the compatibility endpoint: ask the
            // registry to register the refused ones, which it rejects with its reason.
            for ((subject, contract), verdict) in subjects.iter().zip(&verdicts) {
                if matches!(verdict, Compatibility::Incompatible { .. }) {
                    match registry.register(subject, &contract.text).await {
                        Err(error) => eprintln!("{error}"),
                        Ok(id) => eprintln!("{subject}: the registry accepted it after all (id {id})"),
                    }
                }
            }
        }
        eprintln!("{refused} contract(s) incompatible; nothing registered");
        return Ok(ExitCode::FAILURE);
    }
    if matches!(cmd, SchemasCommand::Check) {
        println!("all {} subjects compatible", subjects.len());
        return Ok(ExitCode::SUCCESS);
    }
    let mut registered = 0;
    for ((subject, contract), verdict) in subjects.iter().zip(verdicts) {
        // Always set on the subject itself: a registry's global default may differ or change.
        registry.set_compatibility(subject, COMPATIBILITY).await?;
        if matches!(verdict, Compatibility::Registered { .. }) {
            continue;
        }
        let id = registry.register(subject, &contract.text).await?;
        registered += 1;
        println!("{subject}: registered (id {id})");
    }
    println!("{registered} registered, {} unchanged, compatibility {COMPATIBILITY}", subjects.len() - registered);
    Ok(ExitCode::SUCCESS)
}

//! `hub schemas check|register`: every contract under its subject, BACKWARD compatible.

use std::process::ExitCode;

use interchange_core::registry::{Compatibility, Registry};

use super::load;
use crate::cli::{Global, SchemasCommand};

/// The compatibility rule set on every subject: consumers on the new schema read old records.
const COMPATIBILITY: &str = "BACKWARD";

pub async fn run(global: &Global, cmd: SchemasCommand) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let registry = Registry::new(&global.registry_url, global.registry_basic_auth.as_deref())?;
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
            }
        }
        verdicts.push(verdict);
    }
    if refused > 0 {
        eprintln!("{refused} contract(s) incompatible; nothing registered");
        return Ok(ExitCode::FAILURE);
    }
    if matches!(cmd, SchemasCommand::Check) {
        println!("all {} subjects compatible", subjects.len());
        return Ok(ExitCode::SUCCESS);
    }
    let mut registered = 0;
    for ((subject, contract), verdict) in subjects.iter().zip(verdicts) {
        if registry.compatibility(subject).await?.as_deref() != Some(COMPATIBILITY) {
            registry.set_compatibility(subject, COMPATIBILITY).await?;
        }
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

//! `hub probe URL`: exits 0 when the URL answers 2xx. The container image has no shell or curl,
//! so docker-compose health checks run this.

use std::process::ExitCode;

use crate::cli::ProbeArgs;

pub async fn run(args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder().timeout(args.timeout).build()?;
    match client.get(&args.url).send().await {
        Ok(response) if response.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(response) => {
            eprintln!("{}: {}", args.url, response.status());
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            eprintln!("{}: {error}", args.url);
            Ok(ExitCode::FAILURE)
        }
    }
}

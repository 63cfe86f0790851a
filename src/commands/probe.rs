//! `hub probe URL`: exits 0 when the URL answers 2xx. The container image has no shell or curl,
//! so docker-compose health checks run this.

use std::process::ExitCode;

use clap::Args;

/// `hub probe` options.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The URL to GET, e.g. http://127.0.0.1:8080/readyz.
    pub url: String,
    /// Give up after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub timeout: std::time::Duration,
}

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

use std::process::ExitCode;

use caduceus::cli::Cli;
use clap::Parser;

fn main() -> ExitCode {
    match caduceus::cli::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

//! The binary: parse flags, set up logging, run. The only place that uses anyhow-style
//! top-level error printing and chooses exit codes.

use std::process::ExitCode;

use clap::Parser;

use api_token_exporter::cli::{Cli, Command};
use api_token_exporter::config::Config;
use api_token_exporter::web::Web;
use api_token_exporter::{RunOptions, check, demo, logging, memory, notify, run, shutdown_signal};

fn main() -> ExitCode {
    memory::tune_allocator();
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);

    if cli.config_check {
        let mut code = match Config::load(&cli.config_file) {
            Ok(c) => {
                for warning in c.deprecations() {
                    eprintln!("{}: warning: {warning}", cli.config_file.display());
                }
                // Listed tokens are not known until the daemon lists: the count is the sources'.
                let sources = match c.sources.len() {
                    0 => String::new(),
                    n => format!(", {n} sources"),
                };
                println!(
                    "{}: OK ({} providers, {} tokens{sources})",
                    cli.config_file.display(),
                    c.providers.len(),
                    c.tokens.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
        // A web config given alongside is checked too, certificates and keys included, so
        // a pipeline can validate both files before a rollout.
        if let Some(web) = &cli.web_config_file {
            match Web::load(web) {
                Ok(_) => println!("{}: OK", web.display()),
                Err(e) => {
                    eprintln!("{e}");
                    code = ExitCode::FAILURE;
                }
            }
        }
        return code;
    }

    api_token_exporter::provider::set_answer_caps(cli.answer_caps());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shard = match cli.shard() {
        Ok(shard) => shard,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions {
        config_file: cli.config_file.clone(),
        listen_address: cli.listen_address.clone(),
        telemetry_path: cli.telemetry_path.clone(),
        storage_path: cli.storage_path.clone(),
        web_config_file: cli.web_config_file.clone(),
        shard,
        connections: api_token_exporter::listen::Limits {
            max_connections: cli.max_connections,
            read_header_timeout: cli.read_header_timeout,
            idle_timeout: cli.idle_timeout,
        },
        reload_max_drop: cli.reload_max_drop,
        collectors: cli.collectors.0,
    };
    match cli.command {
        Some(Command::Check {
            output,
            tokens,
            selector,
            fail_on,
        }) => ExitCode::from(runtime.block_on(check::run(check::Options {
            config_file: cli.config_file.clone(),
            storage_path: cli.storage_path.clone(),
            output,
            tokens,
            selector,
            fail_on,
        }))),
        Some(Command::Rotate { token, dry_run }) => ExitCode::from(runtime.block_on(
            api_token_exporter::app::rotate::run(api_token_exporter::app::rotate::Options {
                config_file: cli.config_file.clone(),
                storage_path: cli.storage_path.clone(),
                token,
                dry_run,
            }),
        )),
        Some(Command::NotifyTest { receiver }) => {
            match runtime.block_on(notify::send_test(&cli.config_file, &receiver)) {
                Ok(done) => {
                    println!("notify-test: {done}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("notify-test: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Demo { smtp, webhook }) => match runtime.block_on(demo::run(
            opts,
            demo::DemoNotify { smtp, webhook },
            shutdown_signal(),
        )) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => match runtime.block_on(run(opts, shutdown_signal())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}

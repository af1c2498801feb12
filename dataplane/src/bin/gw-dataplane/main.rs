//! gw-dataplane: the DPDK runner. Starts the EAL, brings up the configured
//! ports with one rx/tx queue per worker lcore (RSS across them), runs the
//! workers, and on the main lcore prints live counters and handles
//! shutdown (SIGINT/SIGTERM, or `--exit-when-idle`).

mod control;
mod links;
mod reservations;
mod runner;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dataplane::config::{Config, PortConfig};

/// The gateway's dataplane. Without --config it runs with built-in defaults
/// (no hugepages, no PCI, lcores 0,1) and the ports given with --port.
#[derive(Debug, Parser)]
#[command(name = "gw-dataplane", version)]
struct Args {
    /// TOML configuration (see configs/dataplane.example.toml).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// A port as NAME=DEVICE (repeatable): sets the device of the config's
    /// port NAME, or adds that port. DEVICE is a PCI address or a DPDK
    /// virtual device string.
    #[arg(long = "port", value_name = "NAME=DEVICE")]
    ports: Vec<String>,
    /// Override eal.lcores (first = main lcore, the rest run workers).
    #[arg(long)]
    lcores: Option<String>,
    /// Override eal.file_prefix (unique per running process).
    #[arg(long)]
    file_prefix: Option<String>,
    /// Exit once no packet has arrived for this many milliseconds (for
    /// processing a finite pcap and exiting with counters printed).
    #[arg(long, value_name = "MS")]
    exit_when_idle: Option<u64>,
    /// Seconds between live counter lines; 0 prints none.
    #[arg(long, default_value_t = 1.0)]
    stats_interval: f64,
    /// Override worker.idle_sleep_max_us (0: poll without sleeping).
    #[arg(long, value_name = "US")]
    idle_sleep_max_us: Option<u32>,
    /// Check the configuration, print the EAL arguments, and exit.
    #[arg(long)]
    check: bool,
}

fn build_config(args: &Args) -> Result<Config, String> {
    let origin = args.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "command line".into());
    let mut cfg = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            // Parse now, validate once the overrides are applied.
            toml::from_str::<Config>(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => toml::from_str::<Config>("").expect("empty config parses"),
    };
    // --port NAME=DEVICE sets the device of the config's port NAME, or adds
    // a port of that name.
    for (i, spec) in args.ports.iter().enumerate() {
        let Some((name, device)) = spec.split_once('=') else {
            return Err(format!("--port #{}: '{spec}' is not NAME=DEVICE", i + 1));
        };
        match cfg.ports.iter_mut().find(|p| p.name == name) {
            Some(p) => p.device = device.into(),
            None => cfg.ports.push(PortConfig {
                name: name.into(),
                device: device.into(),
                rx_desc: 1024,
                tx_desc: 1024,
                addresses: Vec::new(),
                mtu: 1500,
                mac: None,
            }),
        }
    }
    if let Some(l) = &args.lcores {
        cfg.eal.lcores = l.clone();
    }
    if let Some(p) = &args.file_prefix {
        cfg.eal.file_prefix = p.clone();
    }
    if let Some(us) = args.idle_sleep_max_us {
        cfg.worker.idle_sleep_max_us = us;
    }
    cfg.validate(&origin).map_err(|e| e.to_string())?;
    if !args.stats_interval.is_finite() || args.stats_interval < 0.0 {
        return Err(format!("--stats-interval: {} is not a number of seconds >= 0", args.stats_interval));
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gw-dataplane: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("configuration ok; EAL arguments: {}", cfg.eal_args().join(" "));
        return ExitCode::SUCCESS;
    }
    let opts = runner::RunOptions {
        exit_when_idle: args.exit_when_idle.map(std::time::Duration::from_millis),
        stats_interval: (args.stats_interval > 0.0).then(|| std::time::Duration::from_secs_f64(args.stats_interval)),
    };
    match runner::run(&cfg, &opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gw-dataplane: {e}");
            ExitCode::from(1)
        }
    }
}

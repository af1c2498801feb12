//! gw-bench: the line-rate harness.
//!
//! `gw-bench forward` measures the plain rx->tx forwarding loop of
//! `gw-dataplane` and `dpdk-testpmd --forward-mode=io` in the same run, on
//! the arrangement of ../shared/anchors (README there): port 0 =
//! `net_pcap` replaying a preloaded pcap forever (`infinite_rx=1`), port 1 =
//! `net_null` sink, one worker lcore on CPU 1, main lcore on CPU 0. Rates
//! come from each process's DPDK telemetry socket through the anchors'
//! own sampler (lib/telemetry_rate.py), so both are measured the same way.
//! Runs are interleaved (testpmd, ours, ours, testpmd, ...) because this
//! machine is noisy: only same-run ratios mean anything.
//!
//! Reports Mpps (median window of the median run, min and max over runs)
//! and cycles per packet = TSC Hz / pps.

mod clone;
mod esp;
mod failover;
mod forward;
mod ike;
mod measure;
mod mpsa;
mod plot;
mod traffic;

/// The allocator gw-controlplane runs with (mimalloc), so the in-memory
/// IKE figures are the daemon's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "gw-bench", version, about = "Line-rate harness for the gateway")]
struct Cli {
    /// The shared folder with the anchors (default: ../shared beside the
    /// repository).
    #[arg(long, global = true)]
    shared: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Plain forwarding: gw-dataplane vs dpdk-testpmd io, same vdevs and core.
    Forward(forward::ForwardArgs),
    /// ESP encrypt/decrypt: DPDK path beside ipsec-secgw, and in memory.
    Esp(esp::EspArgs),
    /// IKE SAs per second: our responder beside strongSwan's, same initiator.
    Ike(ike::IkeArgs),
    /// Multi-point SA: hub CPU to hand a new group SA to 1,000 and 10,000 endpoints.
    Mpsa(mpsa::MpsaArgs),
    /// Clone IKE SA: N VPNs over N interfaces by clone vs by N full IKE SAs.
    Clone(clone::CloneArgs),
    /// Stub failover: N clients rebuilt on a standby by IKE_SA_SYN vs the full exchange.
    Failover(failover::FailoverArgs),
    /// Draw an SVG bar chart from an `esp --markdown` report.
    Plot {
        /// The report (Markdown).
        input: PathBuf,
        /// The SVG to write.
        out: PathBuf,
    },
    /// Write a pcap of UDP/IPv4 test frames (input for a net_pcap port).
    Pcap {
        /// Inner IPv4 packet size in octets, or "imix".
        #[arg(long, default_value = "64")]
        size: String,
        /// Frames to write.
        #[arg(long, default_value_t = 256)]
        count: usize,
        /// Output file.
        out: PathBuf,
    },
}

/// The shared folder: --shared, or ../shared beside the repository.
fn shared_dir(arg: Option<PathBuf>) -> Result<PathBuf, String> {
    let p = arg.unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    p.canonicalize().map_err(|e| format!("shared folder {}: {e} (pass --shared)", p.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Forward(a) => shared_dir(cli.shared).and_then(|s| forward::run(&a, &s)),
        Cmd::Esp(a) => esp::run(&a, shared_dir(cli.shared).ok().as_deref()),
        Cmd::Ike(a) => ike::run(&a, shared_dir(cli.shared).ok().as_deref()),
        Cmd::Mpsa(a) => mpsa::run(&a),
        Cmd::Clone(a) => clone::run(&a),
        Cmd::Failover(a) => failover::run(&a),
        Cmd::Plot { input, out } => plot::run(&input, &out),
        Cmd::Pcap { size, count, out } => {
            traffic::write_pcap(&out, &size, count).map(|n| println!("wrote {n} frames to {}", out.display()))
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gw-bench: {e}");
            ExitCode::from(1)
        }
    }
}

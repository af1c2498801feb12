//! Finds the system DPDK with pkg-config, compiles the C shim for DPDK's
//! static inline functions, and generates the bindings with bindgen.
//!
//! Never reads an environment path for DPDK and never adds -march=native:
//! the flags come from `pkg-config libdpdk` alone (DPDK's own baseline).

use std::env;
use std::path::PathBuf;

/// DPDK libraries a static binary needs, in link order (dependents before
/// their dependencies). Drivers register themselves from constructors, so
/// every one is linked whole (`+whole-archive`).
const STATIC_LIBS: &[&str] = &[
    // Poll-mode drivers for virtual devices, then PCI NICs a bare-metal
    // appliance typically carries.
    "rte_net_ring",
    "rte_net_null",
    "rte_net_pcap",
    "rte_net_tap",
    "rte_net_af_packet",
    "rte_net_memif",
    "rte_net_virtio",
    "rte_net_e1000",
    "rte_net_ixgbe",
    "rte_net_i40e",
    "rte_net_ice",
    "rte_common_iavf",
    "rte_crypto_ipsec_mb",
    "rte_bus_vdev",
    "rte_bus_pci",
    "rte_mempool_ring",
    // Libraries.
    "rte_ipsec",
    "rte_security",
    "rte_cryptodev",
    "rte_gso",
    "rte_ip_frag",
    "rte_hash",
    "rte_lpm",
    "rte_rib",
    "rte_fib",
    "rte_ethdev",
    "rte_meter",
    "rte_net",
    "rte_mbuf",
    "rte_mempool",
    "rte_rcu",
    "rte_ring",
    "rte_pci",
    "rte_timer",
    "rte_eal",
    "rte_telemetry",
    "rte_kvargs",
];

/// System libraries the static DPDK libraries above call into; these stay
/// shared (they are part of any Debian base install or small packages).
const STATIC_SYSTEM_LIBS: &[&str] = &["pcap", "numa", "IPSec_MB", "bsd", "m", "dl", "pthread"];

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=build.rs");

    let statik = env::var_os("CARGO_FEATURE_STATIC").is_some();
    let dpdk =
        pkg_config::Config::new().atleast_version("22.11").cargo_metadata(false).probe("libdpdk").unwrap_or_else(|e| {
            panic!(
                "DPDK 22.11 not found with pkg-config ({e}); install it with \
                 `apt-get install libdpdk-dev dpdk` or run ./setup.sh"
            )
        });

    // C flags for the shim and for bindgen: include paths and defines from
    // pkg-config, nothing else.
    let mut clang_args: Vec<String> = Vec::new();
    for p in &dpdk.include_paths {
        clang_args.push(format!("-I{}", p.display()));
    }
    for (k, v) in &dpdk.defines {
        match v {
            Some(v) => clang_args.push(format!("-D{k}={v}")),
            None => clang_args.push(format!("-D{k}")),
        }
    }
    // `-include rte_config.h` and `-march=corei7` come through --cflags as
    // "other" flags, which the pkg-config crate does not expose: ask again.
    let other = std::process::Command::new("pkg-config")
        .args(["--cflags-only-other", "libdpdk"])
        .output()
        .expect("pkg-config --cflags-only-other libdpdk");
    let other = String::from_utf8_lossy(&other.stdout).into_owned();
    let mut it = other.split_whitespace();
    while let Some(flag) = it.next() {
        if flag == "-include" {
            if let Some(h) = it.next() {
                clang_args.push("-include".into());
                clang_args.push(h.into());
            }
        } else if flag.starts_with("-m") || flag.starts_with("-D") {
            clang_args.push(flag.into());
        }
    }

    let mut build = cc::Build::new();
    build.file("shim/shim.c").opt_level(3).warnings(true);
    for a in &clang_args {
        build.flag(a);
    }
    build.compile("gw_dpdk_shim");

    // Link flags.
    for p in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", p.display());
    }
    if statik {
        for lib in STATIC_LIBS {
            println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={lib}");
        }
        for lib in STATIC_SYSTEM_LIBS {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    } else {
        for lib in &dpdk.libs {
            println!("cargo:rustc-link-lib={lib}");
        }
        // rte_eth_from_rings() lives in the net_ring driver, which pkg-config
        // does not list (drivers are loaded as plugins in a shared build).
        println!("cargo:rustc-link-lib=rte_net_ring");
    }

    let bindings = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(&clang_args)
        .allowlist_function(
            "shim_.*|rte_eal_.*|rte_eth_.*|rte_pktmbuf_.*|rte_mbuf_.*|rte_mempool_.*\
             |rte_ring_.*|rte_lcore_.*|rte_get_.*|rte_strerror|rte_socket_id|rte_version\
             |rte_mp_disable",
        )
        .allowlist_var("RTE_MAX_.*|RTE_PKTMBUF_.*|RTE_MBUF_.*|RTE_ETH_.*|RTE_RING_.*|RTE_VER_.*")
        .opaque_type("rte_l2tpv2_.*|rte_arp_.*|rte_flow_.*")
        .blocklist_type("max_align_t")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on the DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("writing bindings.rs");
}

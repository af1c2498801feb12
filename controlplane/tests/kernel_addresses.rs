//! MOBIKE over kernel UDP (no dataplane): the daemon watches the kernel's
//! addresses with rtnetlink, and when the initiator's address goes
//! (`ip addr del`), or its link loses carrier, it moves the IKE SA to its
//! other address (RFC 4555 3.3); the responder follows. Two
//! `gw-controlplane` processes in network namespaces joined by two veth
//! pairs. Needs root.

mod common;

use common::wait_log;
use std::path::Path;
use std::process::{Child, Command};

struct Lab {
    ns: [String; 2],
    procs: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {args:?}");
}

/// A daemon on kernel UDP: `listen` addresses, one connection.
fn config(dir: &Path, name: &str, listen: &[&str], conn: &str) -> String {
    let listen: Vec<String> = listen.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[daemon]\ntransport = \"kernel\"\nlisten = [{}]\nadmin_socket = \"{}\"\nretransmit_base_ms = 300\n\
         [[connection]]\nname = \"lab\"\npsk = \"netlink-lab-psk-0123\"\n{conn}",
        listen.join(", "),
        dir.join(format!("{name}.sock")).display(),
    )
}

#[test]
#[ignore = "needs root (network namespaces): ./test.sh runs it with --include-ignored"]
fn rfc4555_3_3_kernel_transport_moves_when_the_kernel_takes_our_address() {
    let pid = std::process::id();
    let (a, b) = (format!("gwnl{pid}-a"), format!("gwnl{pid}-b"));
    let mut lab = Lab { ns: [a.clone(), b.clone()], procs: Vec::new() };
    for n in [&a, &b] {
        ip(&["netns", "add", n]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
    }
    for (i, (ia, ib)) in [("u0", "p0"), ("u1", "p1")].into_iter().enumerate() {
        ip(&["link", "add", ia, "netns", &a, "type", "veth", "peer", "name", ib, "netns", &b]);
        ip(&["-n", &a, "addr", "add", &format!("10.66.{i}.1/24"), "dev", ia]);
        ip(&["-n", &b, "addr", "add", &format!("10.66.{i}.2/24"), "dev", ib]);
        ip(&["-n", &a, "link", "set", ia, "up"]);
        ip(&["-n", &b, "link", "set", ib, "up"]);
    }
    // B's IKE address is on neither link; A reaches it over either.
    ip(&["-n", &b, "addr", "add", "10.66.9.2/32", "dev", "lo"]);
    ip(&["-n", &a, "route", "add", "10.66.9.2/32", "via", "10.66.0.2", "metric", "100"]);
    ip(&["-n", &a, "route", "add", "10.66.9.2/32", "via", "10.66.1.2", "metric", "200"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = config(
        d,
        "a",
        &["10.66.0.1", "10.66.1.1"],
        "role = \"initiator\"\nlocal = \"10.66.0.1\"\nremote = \"10.66.9.2\"\nlocal_id = \"a.lab\"\n\
         remote_id = \"b.lab\"\nlocal_ts = [\"10.1.0.0/16\"]\nremote_ts = [\"10.2.0.0/16\"]\n\
         additional_addresses = [\"10.66.1.1\"]\n",
    );
    let cb = config(
        d,
        "b",
        &["10.66.9.2"],
        "role = \"responder\"\nlocal = \"10.66.9.2\"\nremote = \"%any\"\nlocal_id = \"b.lab\"\n\
         remote_id = \"a.lab\"\nlocal_ts = [\"10.2.0.0/16\"]\nremote_ts = [\"10.1.0.0/16\"]\n",
    );
    let bin = env!("CARGO_BIN_EXE_gw-controlplane");
    for (n, ns, text) in [("b", &b, &cb), ("a", &a, &ca)] {
        let cfg = d.join(format!("{n}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let log = std::fs::File::create(d.join(format!("{n}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, bin, "--config", cfg.to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        lab.procs.push(child);
    }
    let (la, lb) = (d.join("a.log"), d.join("b.log"));
    let show = || {
        format!(
            "a:\n{}\nb:\n{}",
            std::fs::read_to_string(&la).unwrap_or_default(),
            std::fs::read_to_string(&lb).unwrap_or_default()
        )
    };
    assert!(wait_log(&la, "established with b.lab", 10), "{}", show());
    assert!(wait_log(&la, "kernel: our usable addresses: 10.66.0.1, 10.66.1.1", 5), "{}", show());
    // The kernel takes A's address: A moves to the other one, B follows.
    ip(&["-n", &a, "addr", "del", "10.66.0.1/24", "dev", "u0"]);
    assert!(wait_log(&la, "kernel: our usable addresses: 10.66.1.1\n", 5), "{}", show());
    assert!(wait_log(&la, "to 10.66.1.1:", 5) && wait_log(&la, "our address on the path went away", 5), "{}", show());
    assert!(wait_log(&lb, "<-> 10.66.1.1:", 5), "B follows: {}", show());
    // The address comes back and the other link loses carrier: A moves back.
    ip(&["-n", &a, "addr", "add", "10.66.0.1/24", "dev", "u0"]);
    ip(&["-n", &a, "route", "replace", "10.66.9.2/32", "via", "10.66.0.2", "metric", "100"]);
    assert!(wait_log(&la, "kernel: our usable addresses: 10.66.0.1, 10.66.1.1\n", 5), "{}", show());
    ip(&["-n", &b, "link", "set", "p1", "down"]);
    assert!(wait_log(&la, "kernel: our usable addresses: 10.66.0.1\n", 5), "{}", show());
    assert!(wait_log(&la, "to 10.66.0.1:", 5), "{}", show());
}

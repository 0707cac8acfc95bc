//! A real network partition: one host runs in a network namespace of its own, joined to
//! this one by a veth pair, and a `prohibit` route inside it cuts it off from NATS while it
//! stays reachable over HTTP. It keeps serving its replica; the controller places one
//! elsewhere; when the route goes, the host reconnects and the surplus replica is stopped.
//! Needs `ip netns` (root); without it the test says so and checks nothing.

use crate::harness::{
    Cluster, Nats, NatsExtra, ReplicaWatch, hello_deployment, serial, start_controller, start_host,
    start_host_in, try_get,
};
use std::process::Command;
use std::time::{Duration, Instant};

/// A network namespace with a veth link to this one and two subnets on it: `nats_net`
/// (10.201.K.0/24) for reaching NATS and `http_net` (10.202.K.0/24) for HTTP.
struct Netns {
    name: String,
    veth: String,
    k: u32,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn create() -> Result<Self, String> {
        let k = std::process::id() % 200 + 20;
        let name = format!("hearth-t{k}");
        let veth = format!("ht{k}a");
        let peer = format!("ht{k}b");
        let _ = ip(&["netns", "del", &name]);
        let _ = ip(&["link", "del", &veth]);
        ip(&["netns", "add", &name])?;
        let ns = Self {
            name: name.clone(),
            veth: veth.clone(),
            k,
        };
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &name])?;
        ip(&["addr", "add", &format!("10.201.{k}.1/24"), "dev", &veth])?;
        ip(&["addr", "add", &format!("10.202.{k}.1/24"), "dev", &veth])?;
        ip(&["link", "set", &veth, "up"])?;
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", name.as_str(), "ip"];
            full.extend_from_slice(args);
            ip(&full)
        };
        inside(&["addr", "add", &format!("10.201.{k}.2/24"), "dev", &peer])?;
        inside(&["addr", "add", &format!("10.202.{k}.2/24"), "dev", &peer])?;
        inside(&["link", "set", &peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn nats_ip(&self) -> String {
        format!("10.201.{}.1", self.k)
    }

    fn inner_http_ip(&self) -> String {
        format!("10.202.{}.2", self.k)
    }

    /// Cuts the namespace off from `ip` (packets to it are refused inside the namespace).
    fn cut(&self, to: &str) {
        ip(&[
            "netns",
            "exec",
            &self.name,
            "ip",
            "route",
            "add",
            "prohibit",
            &format!("{to}/32"),
        ])
        .unwrap();
    }

    fn heal(&self, to: &str) {
        ip(&[
            "netns",
            "exec",
            &self.name,
            "ip",
            "route",
            "del",
            "prohibit",
            &format!("{to}/32"),
        ])
        .unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.veth]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn a_partitioned_host_keeps_serving_is_replaced_and_its_surplus_replica_goes_when_it_heals() {
    let _serial = serial();
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!(
                "SKIPPED: no network namespaces here ({why}); the partition test needs root and `ip netns`"
            );
            return;
        }
    };
    let nats = Nats::start_on(&ns.nats_ip(), 1, NatsExtra::default());
    let url = nats.url();
    let hosts = vec![
        start_host(&url, "h1", &[]),
        start_host(&url, "h2", &[]),
        start_host_in(Some(&ns.name), &ns.inner_http_ip(), &url, "h3", &[]),
    ];
    let cluster = Cluster::assemble(nats, hosts, vec![start_controller(&url, "c1")]);
    cluster.apply("hello", &hello_deployment("hello", 3, "hi", ""));
    assert_eq!(
        cluster.wait_ready("hello", 3, Duration::from_secs(60)),
        ["h1", "h2", "h3"]
    );
    let h3 = cluster.host("h3").http;

    // Cut h3 off from NATS: it keeps serving; the controller places its replica elsewhere.
    ns.cut(&ns.nats_ip());
    let cut = Instant::now();
    cluster.wait_ready_elsewhere("hello", 3, "h3", Duration::from_secs(30));
    let replaced_after = cut.elapsed();
    for _ in 0..20 {
        assert_eq!(
            try_get(h3, "/").unwrap(),
            (200, "hi\n".into()),
            "the partitioned host stopped serving"
        );
    }

    // Heal: h3 comes back with its replica; one of the four is stopped.
    let watch = ReplicaWatch::start(&cluster.url(), "hello");
    std::thread::sleep(Duration::from_millis(1500));
    ns.heal(&ns.nats_ip());
    let healed = Instant::now();
    cluster.eventually(Duration::from_secs(30), "three replicas again", || {
        (cluster.reported("hello", Some("ready"))? == (3, 3)).then_some(())
    });
    let most = watch.finish();
    eprintln!(
        "partition: replaced {:.2} s after the cut; back to 3 replicas {:.2} s after healing (at most {most} at once)",
        replaced_after.as_secs_f64(),
        healed.elapsed().as_secs_f64()
    );
    assert_eq!(
        most, 4,
        "the returning host's replica was seen, then one stopped"
    );
    cluster.wait_ready("hello", 3, Duration::from_secs(10));
}

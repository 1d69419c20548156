//! High availability against a real three-node OpenBao cluster with
//! integrated (Raft) storage on loopback, started here. The clusters run with
//! `disable_standby_reads`, so that a standby does not answer a read from its
//! own replica but forwards it to the active node, or redirects to it: the
//! hard case, where the death of the leader matters to a reader.
//!
//! - tagstrap follows a real standby's 307 to the active node;
//! - the leader is SIGKILLed at the moment tagstrap connects to it (a relay
//!   in front of it runs the kill when the first connection arrives), and
//!   tagstrap still gets the credential from the survivors, once they have
//!   elected a new leader, well within its deadline.

mod common;

use common::{Tagstrap, Witness};
use testkit::{BaoCluster, Relay};

const USER: &str = "svc-agent";
const PASSWORD: &str = "p@ss:/%w0rd-h4";
const PROXY: &str = "proxy.test:3128";
const READ_POLICY: &str = "path \"secret/data/*\" { capabilities = [\"read\"] }";

fn cluster() -> (BaoCluster, String) {
    let cluster = BaoCluster::builder(3).disable_standby_reads().start();
    cluster.put_kv2("secret", "PROXY_PASS", &[("value", PASSWORD)]);
    let token = cluster.create_token(READ_POLICY);
    (cluster, token)
}

fn run_with_store(addresses: &[String], token: &str) -> (common::Run, Witness) {
    let witness = Witness::expecting_proxy(PROXY, USER, PASSWORD);
    let run = Tagstrap::new("run")
        .tag("rs_agent:http_proxy", PROXY)
        .tag("rs_agent:http_proxy_user", USER)
        .tag("rs_agent:http_proxy_password", "cred:PROXY_PASS")
        .tag("rs_agent:mime_shellscript", &witness.url())
        .vault(&addresses.join(","), token)
        .arg("--deadline")
        .arg("60")
        .arg("-v")
        .run();
    (run, witness)
}

#[test]
fn a_standbys_redirect_to_the_active_node_is_followed() {
    let (cluster, token) = cluster();
    let leader = cluster.leader().expect("a leader");
    let standby = (leader + 1) % cluster.len();
    // Asked not to forward, a real standby answers with its own 307.
    let relay = Relay::start(("127.0.0.1", cluster.port(standby)))
        .inject_header("X-Vault-No-Request-Forwarding", "true");

    let (run, witness) = run_with_store(&[relay.addr()], &token);

    run.assert_success()
        .assert_no_leak(PASSWORD)
        .assert_no_leak(&token);
    assert!(witness.ran(), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "redirected the request to {}",
            cluster.addr(leader)
        )),
        "{}",
        run.stderr
    );
    assert_eq!(run.failed_tries(), 0, "{}", run.stderr);
}

#[test]
fn the_leader_killed_while_tagstrap_reads_does_not_stop_it() {
    let (cluster, token) = cluster();
    let leader = cluster.leader().expect("a leader");
    // The first address is the leader, behind a relay that kills it the
    // moment tagstrap connects; the others are the two standbys.
    let relay = Relay::start(("127.0.0.1", cluster.port(leader)))
        .on_first_connection(cluster.killer(leader));
    let mut addresses = vec![relay.addr()];
    addresses.extend(
        (0..cluster.len())
            .filter(|i| *i != leader)
            .map(|i| cluster.addr(i)),
    );

    let (run, witness) = run_with_store(&addresses, &token);

    run.assert_success()
        .assert_no_leak(PASSWORD)
        .assert_no_leak(&token);
    assert!(witness.ran(), "{}", run.stderr);
    assert!(!cluster.is_alive(leader), "the leader was killed");
    assert!(relay.connections() >= 1);
    let new_leader = cluster.leader().expect("the survivors elected a leader");
    assert_ne!(new_leader, leader);
    assert!(
        run.failed_tries() >= 1,
        "the read failed while no node was active, and was retried:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("answers for the store now"),
        "{}",
        run.stderr
    );
    // For the record (cargo test -- --nocapture): how long the failover took.
    eprintln!(
        "leader killed mid-read: credential resolved and script run after {:.2} s, {} failed tries",
        run.elapsed.as_secs_f64(),
        run.failed_tries()
    );
    assert!(run.elapsed.as_secs() < 60, "within the deadline");
}

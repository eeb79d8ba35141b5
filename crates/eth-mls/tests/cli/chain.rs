//! `ethmls` on a chain that misbehaves (issue 30): blocks a second apart, every command's RPC
//! through the fault proxy (429 bursts, answers lost after the node acted, a 50-block
//! `eth_getLogs` cap, latency), one confirmation, and a reorg within it.

use super::*;

use eth_mls_chain::faults::{Burst, FaultConfig, FaultProxy};

/// Alice and bob, each in a home of their own, register, make a group, invite and accept,
/// and exchange messages over a chain mining every second behind a faulty provider, with a
/// one-block reorg between the invitation and the acceptance. Every message is read exactly
/// once; both agree on the group's epoch; the provider's faults were met.
#[test]
fn two_users_chat_over_a_faulty_interval_mined_chain() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let devnet = Devnet::start_with(&["--block-time", "1"]).unwrap();
    let deployment = rt.block_on(devnet.deploy()).unwrap();
    let proxy = rt
        .block_on(FaultProxy::start(
            &devnet.rpc_url(),
            FaultConfig {
                latency: std::time::Duration::from_millis(5),
                rate_limit: Some(Burst {
                    every: 40,
                    length: 2,
                }),
                lose_answer: Some(Burst {
                    every: 53,
                    length: 1,
                }),
                max_log_range: Some(50),
                ..FaultConfig::default()
            },
        ))
        .unwrap();
    let dir = common::dir("cli-faulty-chain");
    let deployment_file = dir.join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    let password = dir.join("password");
    write(&password, "faulty pw\n");
    let users: Vec<User> = ["alice", "bob"]
        .into_iter()
        .map(|name| User {
            home: dir.join(name),
            name,
            rpc: proxy.url(),
            deployment: deployment_file.clone(),
            password: password.clone(),
            extra: Vec::new(),
        })
        .collect();
    let [alice, bob] = &users[..] else {
        unreachable!()
    };
    let mut addresses = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let r = u.import(&devnet, i + 1, &dir);
        addresses.push(r["address"].as_str().unwrap().to_string());
        u.ok(&["config", "set", "confirmations", "1"]);
        u.ok(&["register"]);
    }
    let group = alice.ok(&["group", "create", "faulty"])["group"]
        .as_str()
        .unwrap()
        .to_string();
    alice.ok(&["group", "invite", &group, &addresses[1]]);

    // A reorg of one block (within the confirmation): whatever it dropped is sent again.
    rt.block_on(common::rollback(&devnet, 1));

    let mut watch = alice.spawn(&["watch", "--timeout", "120"]);
    let mut id = None;
    for _ in 0..120 {
        let r = bob.ok(&["group", "requests"]);
        if let Some(inv) = r["invitations"].as_array().unwrap().first() {
            id = Some(inv["id"].as_str().unwrap().to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let id = id.expect("bob never saw the invitation");
    let r = bob.ok(&["group", "accept", &id, "--wait", "90"]);
    assert_eq!(r["joined"], true, "{r}");
    watch.kill().unwrap();
    let _ = watch.wait();

    alice.ok(&["send", &group, "through the faults"]);
    bob.ok(&["send", &group, "and back"]);
    let mut read = [Vec::new(), Vec::new()];
    for _ in 0..60 {
        for (u, r) in users.iter().zip(read.iter_mut()) {
            u.ok(&["sync", "--wait", "1"]);
            r.extend(texts(&u.ok(&["read", &group])));
        }
        if read[0].iter().any(|t| t == "and back")
            && read[1].iter().any(|t| t == "through the faults")
        {
            break;
        }
    }
    let count = |r: &[String], t: &str| r.iter().filter(|x| *x == t).count();
    assert_eq!(count(&read[1], "through the faults"), 1, "{read:?}");
    assert_eq!(count(&read[0], "and back"), 1, "{read:?}");
    let epochs: Vec<Value> = users
        .iter()
        .map(|u| u.ok(&["group", "list"])["groups"][0]["epoch"].clone())
        .collect();
    assert_eq!(epochs[0], epochs[1], "{epochs:?}");
    let stats = proxy.stats();
    assert!(
        stats.rate_limited > 0 && stats.answers_lost > 0,
        "{stats:?}"
    );
}

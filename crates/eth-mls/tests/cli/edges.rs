//! `ethmls` at the edges (issue 29) and on chains that are not devnets (issue 30): a new chain
//! noticed and reset with consent, refused and unfinished operations exiting non-zero, text
//! output, local commands with the network down, password changes, a damaged store, costs.

use super::*;

/// Issue 29, chain resets: a foreground devnet restarted under a home with a group. Every
/// command that needs the chain says the chain is new and how to reset (exit 3, `doctor`
/// included, with its report); local commands still answer from the store; `reset` needs
/// consent, moves the old state aside (kept), and then `register`, `group create` and
/// `doctor` work. Under the devnet, commands fund the account themselves. Ctrl-C (SIGINT)
/// and SIGTERM end the devnet with its envelope. A cut-short saved state of the on-demand
/// chain is reported at once (anvil's own error, not a 30 s wait) and `reset` recovers it.
#[test]
fn a_new_chain_is_noticed_and_reset_with_consent() {
    let dir = common::dir("cli-reset");
    let home = dir.join("home");
    let password = dir.join("password");
    write(&password, "pw\n");
    let run = |args: &[&str]| finished(in_home(&home, &password, args));

    let (mut devnet, mut devnet_out, _) = start_devnet(&home, &password);
    let (code, env, _) = run(&["account", "new", "alice"]);
    assert_eq!(code, 0, "{env}");
    // No `fund`: under a foreground devnet the command funds the account itself.
    let (code, env, _) = run(&["register"]);
    assert_eq!(code, 0, "{env}");
    let (code, env, _) = run(&["group", "create", "before"]);
    assert_eq!(code, 0, "{env}");
    let group = env["result"]["group"].as_str().unwrap().to_string();
    let (code, env, _) = run(&["send", &group, "said on the old chain"]);
    assert_eq!(code, 0, "{env}");

    // Ctrl-C ends the devnet cleanly, with its envelope.
    signal(&devnet, "INT");
    let status = exits_within(&mut devnet, 20, "the devnet after SIGINT");
    assert!(status.success(), "{status}");
    devnet_out.wait_for("the devnet's envelope", 10, |v| v["ok"] == true);

    // The same command again: a new chain (new genesis), the contracts deployed afresh.
    let (mut devnet, _devnet_out, _) = start_devnet(&home, &password);
    let (code, env, _) = run(&["doctor"]);
    assert_eq!(code, 3, "doctor answers, with the reason: {env}");
    assert_eq!(env["result"]["healthy"], false, "{env}");
    let problem = env["result"]["problems"][0]["problem"].as_str().unwrap();
    assert!(problem.contains("new chain"), "{env}");
    let fix = env["result"]["problems"][0]["fix"].as_str().unwrap();
    assert!(fix.contains("ethmls reset"), "{env}");
    // A store from before the chain record (no `.chain.json` beside it): its groups' missing
    // contracts tell the same.
    let marker = std::fs::read_dir(home.join("stores"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".chain.json"))
        .unwrap();
    let recorded = std::fs::read(&marker).unwrap();
    std::fs::remove_file(&marker).unwrap();
    let (code, env, _) = run(&["register"]);
    assert_eq!(code, 3, "{env}");
    assert!(
        env["error"]["message"]
            .as_str()
            .unwrap()
            .contains("new chain"),
        "{env}"
    );
    assert!(
        !marker.exists(),
        "a new chain is not recorded as the store's"
    );
    std::fs::write(&marker, recorded).unwrap();
    for args in [
        &["register"][..],
        &["send", &group, "x"],
        &["group", "create", "after"],
    ] {
        let (code, env, _) = run(args);
        assert_eq!(code, 3, "{args:?}: {env}");
        assert!(
            env["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("ethmls reset"),
            "{args:?}: {env}"
        );
    }
    // What the store holds is still there to read.
    let (code, env, _) = run(&["read", &group]);
    assert_eq!(code, 0, "{env}");
    assert_eq!(
        env["result"]["messages"][0]["text"],
        "said on the old chain"
    );
    // No consent, no reset (no terminal to ask on).
    let (code, env, _) = run(&["reset"]);
    assert_eq!(code, 2, "{env}");
    assert!(env["error"]["hint"].as_str().unwrap().contains("--yes"));
    let (code, env, _) = run(&["reset", "--yes"]);
    assert_eq!(code, 0, "{env}");
    let backup = PathBuf::from(env["result"]["backup"].as_str().unwrap());
    assert!(
        std::fs::read_dir(&backup)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".db")),
        "the old store is kept in {backup:?}"
    );
    let (code, env, _) = run(&["register"]);
    assert_eq!(code, 0, "{env}");
    let (code, env, _) = run(&["group", "create", "after"]);
    assert_eq!(code, 0, "{env}");
    let (code, env, _) = run(&["doctor"]);
    assert_eq!(code, 0, "{env}");
    assert_eq!(env["result"]["healthy"], true, "{env}");
    // SIGTERM ends it too.
    signal(&devnet, "TERM");
    assert!(exits_within(&mut devnet, 20, "the devnet after SIGTERM").success());

    // The on-demand chain's saved state, cut short: anvil's error at once, then a reset.
    let local = dir.join("local");
    let on_demand = |args: &[&str]| finished(in_home(&local, &password, args));
    struct StopLocal(PathBuf);
    impl Drop for StopLocal {
        fn drop(&mut self) {
            let _ = Command::new(env!("CARGO_BIN_EXE_ethmls"))
                .arg("--home")
                .arg(&self.0)
                .args(["devnet", "--stop"])
                .stdin(Stdio::null())
                .output();
        }
    }
    let _stop = StopLocal(local.clone());
    assert_eq!(on_demand(&["account", "new", "bob"]).0, 0);
    let (code, env, _) = on_demand(&["group", "create", "local"]);
    assert_eq!(code, 0, "{env}");
    assert_eq!(on_demand(&["devnet", "--stop"]).0, 0);
    let state = local.join("devnet/state.json");
    let bytes = std::fs::read(&state).unwrap();
    std::fs::write(&state, &bytes[..bytes.len() / 3]).unwrap();
    let started = std::time::Instant::now();
    let (code, env, _) = on_demand(&["doctor"]);
    assert_eq!(code, 3, "{env}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "no 30 s wait"
    );
    let problem = env["result"]["problems"][0]["problem"].as_str().unwrap();
    assert!(problem.contains("exited as it started"), "{env}");
    assert!(
        env["error"]["hint"].as_str().unwrap().contains("reset"),
        "{env}"
    );
    let (code, env, _) = on_demand(&["reset", "--yes"]);
    assert_eq!(code, 0, "{env}");
    assert!(
        env["result"]["moved"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().ends_with("state.json")),
        "{env}"
    );
    let (code, env, _) = on_demand(&["doctor"]);
    assert_eq!(code, 0, "{env}");
}

/// Issue 29, honest answers: refused or unfinished operations exit non-zero with a hint
/// (inviting oneself, a member, or as a non-admin; an accept that did not join; reading a
/// group the account does not follow); text output carries the JSON's fields and the
/// home's account names; local commands answer with the chain and relay down; clap's usage
/// errors honour `--json`; the keystore password changes (by `ethmls account password` or
/// from outside) without locking the account out of its store; a damaged store is reported
/// as damaged, with no SQLCipher noise.
#[test]
fn refusals_exit_non_zero_and_text_says_what_json_says() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let devnet = Devnet::start().unwrap();
    let deployment = rt.block_on(devnet.deploy()).unwrap();
    let dir = common::dir("cli-edges");
    let deployment_file = dir.join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    let password = dir.join("password");
    write(&password, "edges pw\n");
    // One home, three accounts (as the README's one-machine recipe has it).
    let home = dir.join("home");
    let user = |name: &'static str| User {
        home: home.clone(),
        name,
        rpc: devnet.rpc_url(),
        deployment: deployment_file.clone(),
        password: password.clone(),
        extra: vec!["--account".into(), name.into()],
    };
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let mut addresses = Vec::new();
    for (i, u) in [&alice, &bob, &carol].into_iter().enumerate() {
        let r = u.import(&devnet, i + 1, &dir);
        addresses.push(r["address"].as_str().unwrap().to_string());
        u.ok(&["register"]);
    }
    let (a, b, c) = (&addresses[0], &addresses[1], &addresses[2]);
    let created = alice.ok(&["group", "create", "edges"]);
    let group = created["group"].as_str().unwrap().to_string();
    // What a command's transactions cost is in its result (issue 30).
    assert!(created["transactions"].as_u64().unwrap() >= 1, "{created}");
    assert!(created["gas_used"].as_u64().unwrap() > 400_000, "{created}");
    assert!(
        created["cost_eth"].as_str().unwrap().starts_with("0."),
        "{created}"
    );
    let d = alice.ok(&["doctor"]);
    for field in ["balance_eth", "commit_cost_eth", "create_group_cost_eth"] {
        assert!(d[field].is_string(), "{field}: {d}");
    }
    let read = alice.ok(&["group", "list"]);
    assert!(
        read.get("gas_used").is_none(),
        "no transaction, no cost: {read}"
    );
    alice.ok(&["group", "invite", &group, b]);
    let mut watch = alice.spawn(&["watch", "--timeout", "120"]);
    let mut id = None;
    for _ in 0..40 {
        if let Some(inv) = bob.ok(&["group", "requests"])["invitations"]
            .as_array()
            .unwrap()
            .first()
        {
            id = Some(inv["id"].as_str().unwrap().to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let r = bob.ok(&["group", "accept", &id.unwrap(), "--wait", "90"]);
    assert_eq!(r["joined"], true, "{r}");
    // SIGTERM ends `watch` cleanly, with its envelope.
    std::thread::sleep(std::time::Duration::from_secs(1));
    signal(&watch, "TERM");
    let status = exits_within(&mut watch, 20, "watch after SIGTERM");
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut watch.stdout.take().unwrap(), &mut rest).unwrap();
    let end: Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert_eq!(end["result"]["interrupted"], true, "{end}");

    // Invitations refused before anything is sent: exit 2, with the reason and a hint.
    for (u, who, why) in [
        (&alice, a, "this account"),
        (&alice, b, "already a member"),
        (&bob, c, "admins"),
    ] {
        let (code, env, _) = u.run(&["group", "invite", &group, who]);
        assert_eq!(code, 2, "{} inviting {who}: {env}", u.name);
        let message = env["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{env}");
        assert!(!env["error"]["hint"].as_str().unwrap().is_empty(), "{env}");
    }
    // An accept that did not join (alice's client is not running to add carol): exit 1,
    // `joined: false` in the result, and what happens next.
    alice.ok(&["group", "invite", &group, c]);
    let mut id = None;
    for _ in 0..40 {
        if let Some(inv) = carol.ok(&["group", "requests"])["invitations"]
            .as_array()
            .unwrap()
            .first()
        {
            id = Some(inv["id"].as_str().unwrap().to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let (code, env, _) = carol.run(&["group", "accept", &id.unwrap(), "--wait", "2"]);
    assert_eq!(code, 1, "{env}");
    assert_eq!(env["result"]["joined"], false, "{env}");
    assert!(
        env["error"]["hint"].as_str().unwrap().contains("inviter"),
        "{env}"
    );
    // Reading a group the account does not follow, or one that does not exist: exit 2.
    let (code, env, _) = carol.run(&["read", &group]);
    assert_eq!(code, 2, "{env}");
    let (code, env, _) = alice.run(&["read", "0x000000000000000000000000000000000000dEaD"]);
    assert_eq!(code, 2, "{env}");

    // One address on every chain (issue 30): a home with no deployment file finds the
    // contracts at their deterministic addresses and records them.
    let fresh = dir.join("fresh");
    let rpc = devnet.rpc_url();
    let (code, env, _) = finished(in_home(&fresh, &password, &["account", "new", "erin"]));
    assert_eq!(code, 0, "{env}");
    let (code, env, _) = finished(in_home(&fresh, &password, &["--rpc-url", &rpc, "register"]));
    assert_eq!(code, 0, "{env}");
    let written = eth_mls_chain::Deployment::load(&fresh.join("deployment.json")).unwrap();
    assert_eq!(written.group_factory, deployment.group_factory);

    // Confirmations: the chain's default (0 on anvil), or the config's (issue 30).
    let shown = alice.ok(&["config", "show"]);
    assert_eq!(shown["confirmations"], 0, "{shown}");
    alice.ok(&["config", "set", "confirmations", "2"]);
    let shown = alice.ok(&["config", "show"]);
    assert_eq!(shown["confirmations"], 2, "{shown}");
    assert_eq!(shown["confirmations_from"], "config file", "{shown}");
    let (code, env, _) = alice.run(&["config", "set", "confirmations", "soon"]);
    assert_eq!(code, 2, "{env}");
    alice.ok(&["config", "unset", "confirmations"]);

    // Local commands with the chain and every relay down: answered from the store, fast.
    alice.ok(&["send", &group, "named"]);
    bob.ok(&["sync", "--wait", "2"]);
    let down = User {
        rpc: "http://127.0.0.1:1".into(),
        extra: vec![
            "--account".into(),
            "bob".into(),
            "--delivery".into(),
            "gossip".into(),
            "--peer".into(),
            "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWF3qmVbh6Kh7dGtsi2hk5uD46MR5oEGspjAYTtSKDYx9Z".into(),
        ],
        ..user("bob")
    };
    let started = std::time::Instant::now();
    for args in [
        &["read", &group][..],
        &["group", "list"],
        &["group", "members", &group],
        &["account", "list"],
        &["config", "show"],
    ] {
        let (code, env, _) = down.run(args);
        assert_eq!(code, 0, "{args:?} with everything down: {env}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(15));

    // Text output: every field, and the home's names for addresses.
    let text = |u: &User, args: &[&str]| -> (i32, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ethmls"));
        cmd.arg("--home")
            .arg(&u.home)
            .arg("--rpc-url")
            .arg(&u.rpc)
            .arg("--deployment")
            .arg(&u.deployment)
            .arg("--password-file")
            .arg(&u.password)
            .args(&u.extra)
            .args(args)
            .env_remove("ETHMLS_DELIVERY")
            .env_remove("ETHMLS_PEERS")
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (_, t) = text(&bob, &["read", &group]);
    assert!(t.contains("alice (0x") && t.contains(": named"), "{t}");
    let (_, t) = text(&bob, &["account", "list"]);
    for (name, address) in [("alice", a), ("bob", b), ("carol", c)] {
        assert!(t.contains(name) && t.contains(address.as_str()), "{t}");
    }
    let (_, t) = text(&alice, &["group", "list"]);
    assert!(
        t.contains(&group) && t.contains("epoch ") && t.contains("members"),
        "{t}"
    );
    let (_, t) = text(&alice, &["group", "members", &group]);
    assert!(
        t.contains("alice (0x") && t.contains("owner") && t.contains("bob (0x"),
        "{t}"
    );
    let (_, t) = text(&down, &["--json", "config", "show"]);
    assert!(t.contains("12D3KooW"), "{t}");
    let (_, t) = text(&down, &["config", "show"]);
    assert!(
        t.contains("peers:") && t.contains("12D3KooW"),
        "peers shown: {t}"
    );
    let (code, t) = text(&alice, &["doctor"]);
    assert_eq!(code, 0, "{t}");
    assert!(
        t.contains("local_epoch: ") && t.contains("healthy: true"),
        "{t}"
    );

    // clap's own usage errors honour --json.
    let (code, env, _) = alice.run(&["group", "invite", &group]);
    assert_eq!(code, 2, "{env}");
    assert_eq!(env["ok"], false);
    assert_eq!(env["error"]["kind"], "usage", "{env}");
    let (code, env, _) = alice.run(&["frobnicate"]);
    assert_eq!((code, env["error"]["code"].as_i64()), (2, Some(2)), "{env}");

    // The keystore's password changed by `ethmls account password`: the store opens as
    // before with the new password; the old one is refused.
    let new_password = dir.join("new-password");
    write(&new_password, "a new one\n");
    let r = bob.ok(&[
        "account",
        "password",
        "bob",
        "--new-password-file",
        new_password.to_str().unwrap(),
    ]);
    assert_eq!(r["address"], b.as_str());
    let bob_new = User {
        password: new_password.clone(),
        ..user("bob")
    };
    let (code, env, _) = bob.run(&["group", "list"]);
    assert_eq!(code, 5, "the old password: {env}");
    assert_eq!(
        bob_new.ok(&["group", "list"])["groups"][0]["group"],
        group.as_str()
    );
    // Changed from outside (as `cast wallet change-password` does: the keystore re-encrypted,
    // nothing else touched): the store still opens, and the account still chats.
    let key_hex = std::fs::read_to_string(dir.join("carol.key")).unwrap();
    let key: [u8; 32] = hex::decode(key_hex.trim()).unwrap().try_into().unwrap();
    let outside = dir.join("outside-password");
    write(&outside, "changed elsewhere\n");
    let keystore = home.join("keystores/carol.json");
    std::fs::write(
        &keystore,
        eth_mls::keystore::encrypt(&key, b"changed elsewhere", 10).unwrap(),
    )
    .unwrap();
    let carol_new = User {
        password: outside,
        ..user("carol")
    };
    let (code, env, _) = carol_new.run(&["group", "requests"]);
    assert_eq!(code, 0, "the store opens after an outside change: {env}");

    // A store made before the store key came from the account key (keyed by the keystore
    // password) is re-keyed by its next command, once.
    let alice_key: [u8; 32] = hex::decode(
        std::fs::read_to_string(dir.join("alice.key"))
            .unwrap()
            .trim(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let derived = {
        use sha2_legacy::Digest;
        let mut h = sha2_legacy::Sha256::new();
        h.update(b"eth-mls/ethmls/store-key/v1");
        h.update(alice_key);
        eth_mls_core::StoreKey::raw(h.finalize().into())
    };
    let alice_store = home.join(format!("stores/{}-{}.db", a, deployment.chain_id));
    let legacy = eth_mls_core::StoreKey::passphrase("edges pw");
    derived.rekey(&alice_store, &legacy).unwrap();
    assert!(!derived.opens(&alice_store).unwrap());
    assert_eq!(
        alice.ok(&["group", "list"])["groups"][0]["group"],
        group.as_str()
    );
    assert!(derived.opens(&alice_store).unwrap(), "re-keyed");

    // A damaged store: reported as damaged (the password was right), exit 1, a hint naming
    // the fix, and no SQLCipher lines on stderr.
    let store = std::fs::read_dir(home.join("stores"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.to_string_lossy().ends_with(".db")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&c.to_lowercase())
        })
        .unwrap();
    let mut bytes = std::fs::read(&store).unwrap();
    for b in bytes.iter_mut().skip(16).take(4096) {
        *b ^= 0xa5;
    }
    std::fs::write(&store, &bytes).unwrap();
    let out = carol_new.command(&["group", "list"]).output().unwrap();
    let env: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(out.status.code(), Some(1), "{env}");
    let message = env["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("damaged") && !message.contains("wrong key"),
        "{env}"
    );
    assert!(
        env["error"]["hint"].as_str().unwrap().contains("reset"),
        "{env}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.to_lowercase().contains("sqlcipher"), "{stderr}");

    // No silent per-message spending (issue 30): on a chain that is not a devnet, messages go
    // over the chain channel only when that delivery was chosen.
    let paid = Devnet::start_with(&["--chain-id", "8453"]).unwrap();
    let paid_deployment = rt.block_on(paid.deploy()).unwrap();
    let paid_file = dir.join("paid.json");
    paid_deployment.save(&paid_file).unwrap();
    let payer = User {
        home: dir.join("payer"),
        name: "payer",
        rpc: paid.rpc_url(),
        deployment: paid_file,
        password: password.clone(),
        extra: Vec::new(),
    };
    payer.import(&paid, 1, &dir);
    let g = payer.ok(&["group", "create", "paid"])["group"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, env, _) = payer.run(&["send", &g, "costs money"]);
    assert_eq!(code, 2, "{env}");
    assert!(
        env["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("delivery chain"),
        "{env}"
    );
    let (code, env, _) = payer.run(&["--delivery", "chain", "send", &g, "chosen"]);
    assert_eq!(code, 0, "{env}");

    // A fee cap below the network's base fee: nothing is sent, and the failure says so and
    // how to change it; without the cap the same command goes through.
    payer.ok(&["config", "set", "max_fee_gwei", "0.000000001"]);
    let spent_before = paid_balance(&paid, &payer_address(&paid));
    let (code, env, _) = payer.run(&["group", "create", "too dear"]);
    assert_eq!(code, 3, "{env}");
    let hint = env["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("max_fee_gwei"), "{env}");
    assert!(
        env["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was sent"),
        "{env}"
    );
    assert_eq!(paid_balance(&paid, &payer_address(&paid)), spent_before);
    payer.ok(&["config", "unset", "max_fee_gwei"]);
    payer.ok(&["group", "create", "too dear"]);
}

/// The address of anvil account 1 (the payer).
fn payer_address(devnet: &Devnet) -> eth_mls_siwe::Address {
    devnet.addresses()[1]
}

/// `address`'s balance on `devnet`, wei.
fn paid_balance(devnet: &Devnet, address: &eth_mls_siwe::Address) -> u128 {
    use eth_mls_chain::alloy::providers::Provider;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let chain = devnet.chain(0).await.unwrap();
        chain
            .provider()
            .get_balance(*address)
            .await
            .unwrap()
            .to::<u128>()
    })
}

//! The seed's invitation in seven steps (DESIGN.md decision 16) with every real component:
//! eth-mls-core groups and stores, the 1:1 channel (eth-mls-channel) with bundles published
//! in ERC-7627 and messages carried by ERC-7627 `sendMessage`, the client's wire format, the
//! SIWE consent, the group contract on anvil, and the chain-checked merge for an existing
//! member. A later session's `Client` runs the same steps; this test pins them down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fast, judge, now, registration};

use std::time::Duration;

use alloy_primitives::keccak256;
use eth_mls::Error;
use eth_mls::flows::{accept_answer, answer_invitation};
use eth_mls::inbox::InboxItem;
use eth_mls::invitation::check_request;
use eth_mls::requests::{check_change_request, check_readd_request};
use eth_mls::state::{pending_invitation, remember_invitation, take_invitation};
use eth_mls::verdict::{Acl, Policy};
use eth_mls::wire::{
    ChangeKind, ChangeRequest, ClientMessage, GroupRef, InvitationRequest, ReaddRequest,
    WelcomeDelivery, WelcomeMessage,
};
use eth_mls_chain::alloy::primitives::B256;
use eth_mls_chain::{AclChanges, Chain, CommitPolicy, Cursor, Devnet, Erc7627, key_index};
use eth_mls_channel::{DefaultBackend as B, Device, OneTimePrekeyChoice, PrekeyBundle, Secret};
use eth_mls_core::{
    Checks, EthereumSigner, Event, Group, GroupConfig, LocalEthereumSigner, Store,
    validate_key_package_bytes,
};
use eth_mls_crypto::{Provider as MlsProvider, SUITE};
use eth_mls_siwe::Address;
use futures_util::{Stream, StreamExt};
use openmls_traits::OpenMlsProvider as _;

/// One account with one device: Ethereum key, MLS store, 1:1 channel device, chain client.
struct Person {
    account: LocalEthereumSigner,
    store: Store,
    device: Device<B>,
    chain: Chain,
    registry: Erc7627,
    group: Option<Group>,
    /// Inbox messages that failed (sender, why).
    failed: Vec<(Address, eth_mls::Error)>,
}

impl Person {
    async fn new(devnet: &Devnet, erc7627: Address, index: usize, dir: &std::path::Path) -> Self {
        let (account, store) = common::account(devnet, index, dir).await;
        // The channel device signs its bundles with the MLS signature key, which the SIWE
        // credential binds to the account.
        let seed = Secret::from_slice(store.identity().signer().private_key().expose()).unwrap();
        let mut device = Device::<B>::generate(account.address().into_array(), seed).unwrap();
        device
            .rotate_signed_prekey(now() as u64, 7 * 86_400)
            .unwrap();
        device.generate_one_time_prekeys(5).unwrap();
        let chain = devnet.chain(index).await.unwrap();
        let registry = chain.erc7627(erc7627);
        Self {
            account,
            store,
            device,
            chain,
            registry,
            group: None,
            failed: Vec::new(),
        }
    }

    fn address(&self) -> Address {
        self.account.address()
    }

    async fn publish_bundle(&self) {
        let bundle = self
            .device
            .bundle(now() as u64, 5)
            .unwrap()
            .encode()
            .unwrap();
        self.registry
            .publish_channel_bundle(self.device.identity_key(), &bundle)
            .await
            .unwrap();
    }

    /// Encrypts a client message in `session` and sends it to `to`'s inbox on chain.
    async fn send(&mut self, to: Address, session: &[u8; 32], m: &ClientMessage) {
        let bytes = self.device.encrypt(session, &m.encode().unwrap()).unwrap();
        self.registry
            .send_message(to, key_index::inbox(), B256::from(*session), &bytes)
            .await
            .unwrap();
    }
}

/// The next channel message in an inbox stream, decrypted and decoded.
async fn receive(
    p: &mut Person,
    inbox: &mut (
             impl Stream<
        Item = Result<eth_mls_chain::Event<eth_mls_chain::MessageSent>, eth_mls_chain::Error>,
    > + Unpin
         ),
) -> (eth_mls_channel::Received, ClientMessage) {
    // Own bundles and channel duplicates are skipped; failures are counted, never fatal.
    loop {
        let e = tokio::time::timeout(Duration::from_secs(30), inbox.next())
            .await
            .expect("a message in the inbox")
            .unwrap()
            .unwrap();
        match eth_mls::inbox::open(&mut p.device, &e.data, now() as u64) {
            InboxItem::Message { received, message } => return (received, message),
            InboxItem::Skipped => {}
            InboxItem::Failed { from, error } => p.failed.push((from, error)),
        }
    }
}

/// Alice sends the Welcome of `out` (joining `epoch`) to bob over the channel; bob joins it
/// at the registration's block time and checks the registered authenticator.
#[allow(clippy::too_many_arguments)]
async fn deliver_welcome(
    alice: &mut Person,
    bob: &mut Person,
    session: &[u8; 32],
    bob_inbox: &mut (
             impl Stream<
        Item = Result<eth_mls_chain::Event<eth_mls_chain::MessageSent>, eth_mls_chain::Error>,
    > + Unpin
         ),
    request_id: [u8; 16],
    group: GroupRef,
    epoch: u64,
    out: &eth_mls_core::OutgoingCommit,
    ctx: (&GroupConfig, Address, u64),
) -> (eth_mls::verdict::Registration, Acl) {
    let welcome = WelcomeMessage {
        request_id,
        group,
        epoch,
        delivery: WelcomeDelivery::Inline(out.welcome.clone().unwrap()),
    };
    alice
        .send(bob.address(), session, &ClientMessage::Welcome(welcome))
        .await;
    let (_, m) = receive(bob, bob_inbox).await;
    let ClientMessage::Welcome(WelcomeMessage {
        delivery: WelcomeDelivery::Inline(w),
        epoch,
        ..
    }) = m
    else {
        panic!("a Welcome")
    };
    let (config, contract, from) = ctx;
    let (reg, acl) = registration(&bob.chain, contract, from, epoch).await;
    bob.group = Some(common::join(&mut bob.store, &w, config.clone(), &reg).await);
    (reg, acl)
}

/// `from` sends `text` to the group; `to` processes it and must read it from `from`.
async fn say(from: &mut Person, to: &mut Person, text: &[u8]) {
    let g = from.group.as_mut().unwrap();
    g.send(&mut from.store, text).unwrap();
    let bytes = from
        .store
        .outbox_pending()
        .unwrap()
        .last()
        .unwrap()
        .bytes
        .clone();
    let (group, store) = (to.group.as_mut().unwrap(), &mut to.store);
    let events = group
        .process(store, &bytes, &Checks::at(now()))
        .await
        .unwrap()
        .into_events();
    let sender = from.address();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Application(m) if m.data == text && m.sender == sender))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_steps_then_update_removal_and_readd_requests() {
    let devnet = Devnet::start().unwrap();
    let d = devnet.deploy().await.unwrap();
    let dir = std::env::temp_dir().join(format!("eth-mls-seven-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut alice = Person::new(&devnet, d.erc7627, 1, &dir).await;
    let mut bob = Person::new(&devnet, d.erc7627, 2, &dir).await;
    let mut carol = Person::new(&devnet, d.erc7627, 3, &dir).await;
    // Every account registers its channel bundle (and with it its inbox key) first.
    alice.publish_bundle().await;
    bob.publish_bundle().await;
    let provider = MlsProvider::new();

    // 1. On-chain: alice creates the group's contract (and its MLS group bound to it), with
    //    carol already in it.
    let (contract, _) = alice
        .chain
        .factory(d.group_factory)
        .create_group(b"seven steps", 4, CommitPolicy::AdminsOnly)
        .await
        .unwrap();
    let config = GroupConfig::new(devnet.chain_id(), common::DOMAIN)
        .bound_to(d.group_factory, contract.address());
    let mut group = Group::create(
        &mut alice.store,
        b"seven steps",
        config.clone(),
        Default::default(),
    )
    .unwrap();
    let carol_kp = carol.store.generate_key_package(None).unwrap();
    let kp =
        validate_key_package_bytes(&carol_kp, provider.crypto(), SUITE, &config.policy(), None)
            .await
            .unwrap();
    let out = group
        .add_members(&mut alice.store, &[kp], &Checks::at(now()))
        .await
        .unwrap();
    common::register(
        &contract,
        1,
        &out,
        AclChanges {
            added: vec![carol.address()],
            key_packages: vec![B256::from(keccak256(&carol_kp).0)],
            removed: vec![],
        },
    )
    .await
    .unwrap();
    group.merge_pending_commit(&mut alice.store).unwrap();
    carol.group = Some(
        Group::join(
            &mut carol.store,
            out.welcome.as_ref().unwrap(),
            config.clone(),
            &Checks::at(now()),
        )
        .await
        .unwrap(),
    );
    alice.group = Some(group);

    // 2. Off-chain: alice sends the contract address and an invitation to bob over the 1:1
    //    channel (bob's bundle from ERC-7627, the message through sendMessage).
    let fetched = alice
        .registry
        .channel_bundle(bob.address(), d.block)
        .await
        .unwrap()
        .unwrap();
    let bundle = PrekeyBundle::validate::<B>(&fetched.bundle, now() as u64).unwrap();
    assert_eq!(
        bundle.bundle().signature_key[..],
        bob.store.identity().signer().public_key().as_bytes()[..]
    );
    let session = alice
        .device
        .initiate(&bundle, OneTimePrekeyChoice::Random)
        .unwrap();
    let group_ref = GroupRef {
        chain_id: devnet.chain_id(),
        factory: d.group_factory.into_array(),
        group_contract: contract.address().into_array(),
    };
    let request = InvitationRequest {
        request_id: [0x5e; 16],
        group: group_ref,
        group_id: b"seven steps".to_vec(),
        inviter: alice.address().into_array(),
        expiry: (now() + 3600) as u64,
        note: "join us".into(),
    };
    remember_invitation(&mut alice.store, bob.address(), &request).unwrap();
    alice
        .send(
            bob.address(),
            &session,
            &ClientMessage::InvitationRequest(request.clone()),
        )
        .await;

    // Someone sends bob garbage: his reader reports it and goes on.
    carol
        .registry
        .send_message(
            bob.address(),
            key_index::inbox(),
            B256::ZERO,
            b"not a channel message",
        )
        .await
        .unwrap();
    // 3. Off-chain: bob checks the group against the factory and answers with a key package
    //    and his account's signed consent.
    let mut bob_inbox = Box::pin(bob.registry.messages(
        None,
        Some(bob.address()),
        Cursor::at_block(d.block),
        fast(),
    ));
    let (got, m) = receive(&mut bob, &mut bob_inbox).await;
    assert!(got.new_session);
    assert_eq!(got.peer_address, alice.address().into_array());
    let ClientMessage::InvitationRequest(req) = m else {
        panic!("an invitation")
    };
    let creator = check_request(&bob.chain, d.group_factory, d.block, &req)
        .await
        .unwrap();
    assert_eq!(creator, alice.address());
    let response = answer_invitation(&mut bob.store, &bob.account, &req, now())
        .await
        .unwrap();
    let bob_session = got.session_id;
    bob.send(
        alice.address(),
        &bob_session,
        &ClientMessage::InvitationResponse(response),
    )
    .await;

    // 4. Off-chain: alice verifies the signature (and the key package's credential) ...
    let mut alice_inbox = Box::pin(alice.registry.messages(
        None,
        Some(alice.address()),
        Cursor::at_block(d.block),
        fast(),
    ));
    let (got, m) = receive(&mut alice, &mut alice_inbox).await;
    assert_eq!(got.peer_address, bob.address().into_array());
    let ClientMessage::InvitationResponse(resp) = m else {
        panic!("a response")
    };
    // 5. ... and on-chain adds bob to the ACL with the commit that adds him, in one transaction.
    let peer = Address::from(got.peer_address);
    let invitation = pending_invitation(&alice.store, peer, &resp.request_id).unwrap();
    assert_eq!(invitation, request);
    let (group, store) = (alice.group.as_mut().unwrap(), &mut alice.store);
    let (out, changes) = accept_answer(group, store, &invitation, peer, &resp, now(), None)
        .await
        .unwrap();
    take_invitation(store, peer, &resp.request_id).unwrap();
    assert_eq!(changes.added, vec![bob.address()]);
    common::register(&contract, 2, &out, changes).await.unwrap();
    group.merge_pending_commit(store).unwrap();
    assert!(contract.is_member(bob.address()).await.unwrap());

    // 6. Off-chain: alice sends the Welcome to bob over the channel.
    let ctx = (&config, contract.address(), d.block);
    let (reg, acl) = deliver_welcome(
        &mut alice,
        &mut bob,
        &session,
        &mut bob_inbox,
        request.request_id,
        group_ref,
        2,
        &out,
        ctx,
    )
    .await;

    // 7. Off-chain: the commit reaches the existing members (here from the registration
    //    itself); carol merges it only as registered.
    let (group, store) = (carol.group.as_mut().unwrap(), &mut carol.store);
    judge(group, store, &out.commit, &reg, Policy::AdminsOnly, &acl)
        .await
        .unwrap();

    // Everyone agrees, and bob reads the group.
    let a = alice.group.as_mut().unwrap();
    assert_eq!(a.members().len(), 3);
    say(&mut alice, &mut bob, b"welcome, bob").await;

    // The seed's "updates in groups": bob asks alice, over the channel, to commit an update of
    // his leaf; carol asks to be removed. Alice verifies each request, commits and registers.
    let (group, store) = (bob.group.as_mut().unwrap(), &mut bob.store);
    let (proposal, _) = group.propose_self_update(store).unwrap();
    let update = ChangeRequest {
        request_id: [0x11; 16],
        group: group_ref,
        epoch: 2,
        kind: ChangeKind::Update,
        target: bob.address().into_array(),
        proposal: proposal.bytes.clone(),
    };
    bob.send(
        alice.address(),
        &bob_session,
        &ClientMessage::ChangeRequest(update),
    )
    .await;
    let (got, m) = receive(&mut alice, &mut alice_inbox).await;
    let ClientMessage::ChangeRequest(req) = m else {
        panic!("a change request")
    };
    let peer = Address::from(got.peer_address);
    let acl_now = Acl {
        owner: Some(alice.address()),
        admins: Default::default(),
        members: contract.members().await.unwrap().into_iter().collect(),
    };
    let (group, store) = (alice.group.as_mut().unwrap(), &mut alice.store);
    let events = group
        .process(store, &req.proposal, &Checks::at(now()))
        .await
        .unwrap()
        .into_events();
    let summary = events.iter().find_map(|e| match e {
        Event::Proposal(p) => Some(p.clone()),
        _ => None,
    });
    check_change_request(
        &req,
        peer,
        &group_ref,
        group.epoch(),
        summary.as_ref(),
        &acl_now,
    )
    .unwrap();
    // What bob could not ask for: another member's removal, or a request of a past epoch.
    let mut other = req.clone();
    (other.kind, other.target, other.proposal) =
        (ChangeKind::Removal, carol.address().into_array(), vec![]);
    assert_eq!(
        check_change_request(&other, peer, &group_ref, 2, None, &acl_now),
        Err(Error::RequestNotAllowed)
    );
    assert!(matches!(
        check_change_request(&req, peer, &group_ref, 3, summary.as_ref(), &acl_now),
        Err(Error::StaleRequest { .. })
    ));
    let out = group.commit_pending_proposals(store).unwrap();
    // Bob's leaf (and the committer's, through the update path).
    assert!(out.summary.updated.contains(&bob.address()));
    common::register(&contract, 3, &out, AclChanges::none())
        .await
        .unwrap();
    group.merge_pending_commit(store).unwrap();
    // The proposal was also published on the group's commit topic: carol holds it when the
    // commit refers to it.
    let (group, store) = (carol.group.as_mut().unwrap(), &mut carol.store);
    group
        .process(store, &proposal.bytes, &Checks::at(now()))
        .await
        .unwrap();
    let (reg, acl) = registration(&bob.chain, contract.address(), d.block, 3).await;
    for p in [&mut bob, &mut carol] {
        let (group, store) = (p.group.as_mut().unwrap(), &mut p.store);
        judge(group, store, &out.commit, &reg, Policy::AdminsOnly, &acl)
            .await
            .unwrap();
    }

    // Carol asks to be removed (her leave proposal), through a session she opens with alice.
    let alice_bundle = carol
        .registry
        .channel_bundle(alice.address(), d.block)
        .await
        .unwrap()
        .unwrap();
    let carol_session = carol
        .device
        .initiate(
            &PrekeyBundle::validate::<B>(&alice_bundle.bundle, now() as u64).unwrap(),
            OneTimePrekeyChoice::Random,
        )
        .unwrap();
    let (group, store) = (carol.group.as_mut().unwrap(), &mut carol.store);
    let leave = group.leave(store).unwrap();
    let removal = ChangeRequest {
        request_id: [0x22; 16],
        group: group_ref,
        epoch: 3,
        kind: ChangeKind::Removal,
        target: carol.address().into_array(),
        proposal: leave.bytes.clone(),
    };
    carol
        .send(
            alice.address(),
            &carol_session,
            &ClientMessage::ChangeRequest(removal),
        )
        .await;
    let (got, m) = receive(&mut alice, &mut alice_inbox).await;
    assert!(got.new_session);
    let ClientMessage::ChangeRequest(req) = m else {
        panic!("a change request")
    };
    let (group, store) = (alice.group.as_mut().unwrap(), &mut alice.store);
    let events = group
        .process(store, &req.proposal, &Checks::at(now()))
        .await
        .unwrap()
        .into_events();
    let summary = events.iter().find_map(|e| match e {
        Event::Proposal(p) => Some(p.clone()),
        _ => None,
    });
    check_change_request(
        &req,
        Address::from(got.peer_address),
        &group_ref,
        group.epoch(),
        summary.as_ref(),
        &acl_now,
    )
    .unwrap();
    let out = group.commit_pending_proposals(store).unwrap();
    assert_eq!(out.summary.removed, vec![carol.address()]);
    common::register(&contract, 4, &out, common::removal(&[carol.address()]))
        .await
        .unwrap();
    group.merge_pending_commit(store).unwrap();
    assert!(!contract.is_member(carol.address()).await.unwrap());
    let (reg, acl) = registration(&bob.chain, contract.address(), d.block, 4).await;
    let (group, store) = (bob.group.as_mut().unwrap(), &mut bob.store);
    group
        .process(store, &leave.bytes, &Checks::at(now()))
        .await
        .unwrap();
    judge(group, store, &out.commit, &reg, Policy::AdminsOnly, &acl)
        .await
        .unwrap();
    assert_eq!(group.members().len(), 2);
    assert_eq!(
        group.epoch_authenticator(),
        alice.group.as_ref().unwrap().epoch_authenticator()
    );

    // A fork: bob could not process the last commit (he is stuck one epoch behind), drops his
    // copy of the group and asks alice over
    // the channel to re-add him with a fresh key package; she removes his old leaf and adds
    // the new one in one commit, registered with the matching ACL change.
    let fresh = bob.store.generate_key_package(None).unwrap();
    let readd = ReaddRequest {
        request_id: [0x33; 16],
        group: group_ref,
        last_epoch: bob.group.as_ref().map_or(0, |g| g.epoch()) - 1,
        key_package: fresh.clone(),
    };
    bob.group.take().unwrap().delete(&mut bob.store).unwrap();
    bob.send(
        alice.address(),
        &bob_session,
        &ClientMessage::ReaddRequest(readd),
    )
    .await;
    let (got, m) = receive(&mut alice, &mut alice_inbox).await;
    let ClientMessage::ReaddRequest(req) = m else {
        panic!("a re-add request")
    };
    let kp = validate_key_package_bytes(
        &req.key_package,
        provider.crypto(),
        SUITE,
        &config.policy(),
        None,
    )
    .await
    .unwrap();
    let acl_now = Acl {
        owner: Some(alice.address()),
        admins: Default::default(),
        members: contract.members().await.unwrap().into_iter().collect(),
    };
    let peer = Address::from(got.peer_address);
    let local = alice.group.as_ref().unwrap().epoch();
    check_readd_request(&req, peer, &group_ref, kp.account(), &acl_now, local, None).unwrap();
    // Not stuck: the group is not past the epoch bob names, or bob was seen after it.
    assert!(matches!(
        check_readd_request(&req, peer, &group_ref, peer, &acl_now, req.last_epoch, None),
        Err(Error::NotStale { .. })
    ));
    assert!(matches!(
        check_readd_request(
            &req,
            peer,
            &group_ref,
            peer,
            &acl_now,
            local,
            Some(req.last_epoch + 1)
        ),
        Err(Error::NotStale { .. })
    ));
    assert_eq!(
        check_readd_request(
            &req,
            peer,
            &group_ref,
            carol.address(),
            &acl_now,
            local,
            None
        ),
        Err(Error::WrongAccount {
            expected: peer,
            found: carol.address()
        })
    );
    assert_eq!(
        check_readd_request(
            &req,
            carol.address(),
            &group_ref,
            carol.address(),
            &acl_now,
            local,
            None
        ),
        Err(Error::NotMember {
            account: carol.address()
        })
    );
    let (group, store) = (alice.group.as_mut().unwrap(), &mut alice.store);
    group.propose_remove(store, peer).unwrap();
    group
        .propose_add(store, &kp, &Checks::at(now()))
        .await
        .unwrap();
    let out = group.commit_pending_proposals(store).unwrap();
    assert_eq!(
        (out.summary.added.clone(), out.summary.removed.clone()),
        (vec![peer], vec![peer])
    );
    common::register(
        &contract,
        5,
        &out,
        AclChanges {
            added: vec![peer],
            key_packages: vec![B256::from(keccak256(&fresh).0)],
            removed: vec![peer],
        },
    )
    .await
    .unwrap();
    group.merge_pending_commit(store).unwrap();
    assert!(contract.is_member(peer).await.unwrap());
    let ctx = (&config, contract.address(), d.block);
    deliver_welcome(
        &mut alice,
        &mut bob,
        &session,
        &mut bob_inbox,
        req.request_id,
        group_ref,
        5,
        &out,
        ctx,
    )
    .await;
    say(&mut alice, &mut bob, b"welcome back").await;
    assert_eq!(
        bob.group.as_ref().unwrap().epoch_authenticator(),
        alice.group.as_ref().unwrap().epoch_authenticator()
    );
    assert_eq!(bob.failed.len(), 1, "{:?}", bob.failed);
    assert_eq!(bob.failed[0].0, carol.address());
    assert!(matches!(bob.failed[0].1, eth_mls::Error::Channel(_)));
    assert!(alice.failed.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

//! The account's operations as JSON-RPC methods: what `ethmls daemon` serves (over its Unix
//! socket, HTTP and WebSocket) and what a command runs in-process when no daemon is running —
//! one implementation, so both answer alike. A method acts on the client at once and, for the
//! changes that take blocks (a commit's confirmation, an inviter's add), returns a [`Wait`]:
//! the events to wait for and how to answer when they came (in-process: the command syncs
//! meanwhile; the daemon: its loop keeps running and answers when they come).

use std::time::Duration;

use eth_mls::records::StoredMessage;
use eth_mls::verdict::Acl;
use eth_mls::{ClientEvent, LocalView};
use eth_mls_chain::{Chain, CommitPolicy, Deployment};
use eth_mls_siwe::Address;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::Cl;
use crate::args::{Command, GroupCmd};
use crate::out::{self, Failure, Kind, Out};
use crate::{parse_address, parse_request_id};

/// What the daemon keeps beside its client for the methods that need more than the client.
pub struct Ctx {
    /// The chain connection.
    pub chain: Chain,
    /// The contracts.
    pub deployment: Deployment,
    /// The account's key (its gossip node key is derived from it).
    pub key: Zeroizing<[u8; 32]>,
    /// How frames travel (`doctor` reports it).
    pub delivery: &'static str,
    /// The last problems seen (`doctor` reports them): forks, delayed merges, lost
    /// messages, failed changes, credentials due.
    pub recent: Vec<ClientEvent>,
}

impl Ctx {
    /// How many problem events are kept.
    const RECENT: usize = 32;

    /// Keeps the problems among `events`.
    pub fn remember(&mut self, events: &[ClientEvent]) {
        for e in events {
            if matches!(
                e,
                ClientEvent::ForkDetected { .. }
                    | ClientEvent::MergeDelayed { .. }
                    | ClientEvent::MissedMessages { .. }
                    | ClientEvent::MessageLost { .. }
                    | ClientEvent::CredentialDue { .. }
                    | ClientEvent::MemberDue { .. }
                    | ClientEvent::IntentFailed { .. }
            ) {
                if self.recent.len() == Self::RECENT {
                    self.recent.remove(0);
                }
                self.recent.push(e.clone());
            }
        }
    }
}

/// A method's answer: now, or after some events.
pub enum Outcome {
    /// The result.
    Done(Value),
    /// Wait for events, then answer.
    Wait(Wait),
}

/// Whether the events seen are the ones waited for.
pub type Until = Box<dyn Fn(&[ClientEvent]) -> bool + Send>;
/// The answer, from the client and the events seen.
pub type Finish = Box<dyn FnOnce(&Cl, &[ClientEvent]) -> Result<Value, Failure> + Send>;

/// Answering after events: until `done` holds for the events seen since the call or
/// `within` passed, then `finish`.
pub struct Wait {
    /// The longest wait.
    pub within: Duration,
    /// A progress label for a terminal.
    pub progress: Option<&'static str>,
    /// Whether the events seen are the ones waited for.
    pub done: Until,
    /// The answer, from the client and the events seen.
    pub finish: Finish,
    /// Whether the events seen are shown to the caller (as `event` notifications).
    pub show_events: bool,
}

/// The method and parameters a command is, when it is one of the account's operations
/// (`None` for the others: accounts, config, devnet, node...).
pub fn request(cmd: &Command) -> Option<(&'static str, Value)> {
    Some(match cmd {
        Command::Send { group, text } => ("send", json!({ "group": group, "text": text })),
        Command::Read { group } => ("read", json!({ "group": group })),
        Command::Sync { wait } => ("sync", json!({ "wait": wait })),
        Command::Register => ("register", json!({})),
        Command::Doctor => ("doctor", json!({})),
        Command::Group(g) => match g {
            GroupCmd::Create { name, any_member } => (
                "group.create",
                json!({ "name": name, "any_member": any_member }),
            ),
            GroupCmd::Invite {
                group,
                address,
                note,
            } => (
                "group.invite",
                json!({ "group": group, "address": address, "note": note }),
            ),
            GroupCmd::Requests => ("group.requests", json!({})),
            GroupCmd::Accept { id, wait } => ("group.accept", json!({ "id": id, "wait": wait })),
            GroupCmd::Decline { id } => ("group.decline", json!({ "id": id })),
            GroupCmd::Members { group } => ("group.members", json!({ "group": group })),
            GroupCmd::List => ("group.list", json!({})),
            GroupCmd::Remove { group, address } => (
                "group.remove",
                json!({ "group": group, "address": address }),
            ),
            GroupCmd::Update { group } => ("group.update", json!({ "group": group })),
            GroupCmd::Leave { group } => ("group.leave", json!({ "group": group })),
            GroupCmd::Recover { group, remove } => {
                ("group.recover", json!({ "group": group, "remove": remove }))
            }
        },
        _ => return None,
    })
}

/// The methods answered from the store alone (in-process: no chain or relay is touched).
pub fn is_local(method: &str) -> bool {
    matches!(method, "read" | "group.members" | "group.list")
}

/// What a method's parameters hold.
struct Params<'a>(&'a Value);

impl Params<'_> {
    fn str(&self, name: &str) -> Result<&str, Failure> {
        self.0[name].as_str().ok_or_else(|| {
            Failure::usage(
                format!("parameter {name:?} is missing or not a string"),
                "see the API in the README",
            )
        })
    }

    fn address(&self, name: &str) -> Result<Address, Failure> {
        parse_address(self.str(name)?)
    }

    fn u64_or(&self, name: &str, default: u64) -> Result<u64, Failure> {
        match &self.0[name] {
            Value::Null => Ok(default),
            v => v
                .as_u64()
                .ok_or_else(|| Failure::usage(format!("parameter {name:?} is not a count"), "")),
        }
    }

    fn bool_or(&self, name: &str, default: bool) -> Result<bool, Failure> {
        match &self.0[name] {
            Value::Null => Ok(default),
            v => v
                .as_bool()
                .ok_or_else(|| Failure::usage(format!("parameter {name:?} is not a boolean"), "")),
        }
    }

    fn addresses(&self, name: &str) -> Result<Vec<Address>, Failure> {
        match &self.0[name] {
            Value::Null => Ok(Vec::new()),
            Value::Array(list) => list
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| Failure::usage(format!("{name:?} holds a non-string"), ""))
                        .and_then(parse_address)
                })
                .collect(),
            _ => Err(Failure::usage(format!("{name:?} is not a list"), "")),
        }
    }
}

/// The longest wait a caller may ask for (an hour).
const MAX_WAIT: u64 = 3600;

/// Runs `method` on the client.
pub async fn call(c: &mut Cl, ctx: &Ctx, method: &str, params: &Value) -> Result<Outcome, Failure> {
    let p = Params(params);
    if is_local(method) {
        return local(&*c, method, params).map(Outcome::Done);
    }
    let done = match method {
        "send" => {
            let g = p.address("group")?;
            let text = p.str("text")?;
            c.send(g, text.as_bytes())
                .await
                .map_err(Failure::from_client)?;
            json!({ "group": format!("{g:#x}"), "epoch": c.epoch(g).ok() })
        }
        "sync" => {
            let wait = p.u64_or("wait", 3)?.min(MAX_WAIT);
            return Ok(Outcome::Wait(Wait {
                within: Duration::from_secs(wait),
                progress: None,
                done: Box::new(|_| false),
                finish: Box::new(|_, events| Ok(json!({ "events": events.len() }))),
                show_events: true,
            }));
        }
        "register" => register(c, ctx).await?,
        "doctor" => return crate::doctor::check(c, ctx).await.map(Outcome::Done),
        "group.create" => {
            let name = p.str("name")?;
            let policy = if p.bool_or("any_member", false)? {
                CommitPolicy::AnyMember
            } else {
                CommitPolicy::AdminsOnly
            };
            let g = c
                .create_group(name.as_bytes(), policy)
                .await
                .map_err(Failure::from_client)?;
            json!({ "group": format!("{g:#x}"), "name": name, "epoch": c.epoch(g).ok() })
        }
        "group.invite" => {
            let g = p.address("group")?;
            let who = p.address("address")?;
            let note = p.str("note").unwrap_or("");
            let id = c.invite(g, who, note).await.map_err(|e| match e {
                eth_mls::Error::InviteRefused { .. } => Failure::new(
                    Kind::Usage,
                    e.to_string(),
                    "see `ethmls group members` (the owner makes admins)",
                ),
                eth_mls::Error::NoBundle { .. } => Failure::new(
                    Kind::Usage,
                    format!("{who:#x} has not published its keys, so it cannot be invited"),
                    "the invitee runs `ethmls register` first",
                ),
                e => Failure::from_client(e),
            })?;
            json!({
                "group": format!("{g:#x}"),
                "invited": format!("{who:#x}"),
                "id": hex::encode(id),
                "next": "the invitee accepts with `ethmls group accept`; this account's client \
                         then adds it (keep `ethmls watch` or `chat` running, or run `ethmls sync`)",
            })
        }
        "group.requests" => {
            let list: Vec<Value> = c
                .invitations()
                .map_err(Failure::from_client)?
                .into_iter()
                .filter(|i| !i.answered)
                .map(|i| {
                    let mut v = json!({
                        "id": hex::encode(i.request.request_id),
                        "from": format!("{:#x}", i.from),
                        "group": format!("{:#x}", Address::from(i.request.group.group_contract)),
                        "note": i.request.note,
                        "expiry": i.request.expiry,
                    });
                    out::annotate(&mut v);
                    v
                })
                .collect();
            json!({ "invitations": list })
        }
        "group.accept" => return accept(c, &p).await.map(Outcome::Wait),
        "group.decline" => {
            let id = parse_request_id(p.str("id")?)?;
            c.decline(id).await.map_err(Failure::from_client)?;
            json!({ "declined": hex::encode(id) })
        }
        "group.remove" => {
            let g = p.address("group")?;
            let who = p.address("address")?;
            let before = c.epoch(g).map_err(Failure::from_client)?;
            c.remove(g, &[who]).await.map_err(Failure::from_client)?;
            return Ok(Outcome::Wait(Wait {
                within: Duration::from_secs(60),
                progress: Some("waiting for the commit's confirmation and merge (s)"),
                done: Box::new(move |s| {
                    s.iter().any(|e| {
                        matches!(e, ClientEvent::MemberRemoved { group, member } if *group == g && *member == who)
                            || matches!(e, ClientEvent::IntentFailed { .. })
                    })
                }),
                finish: Box::new(move |c, events| {
                    committed(c, g, before, events)?;
                    Ok(
                        json!({ "group": format!("{g:#x}"), "removed": format!("{who:#x}"), "epoch": c.epoch(g).ok() }),
                    )
                }),
                show_events: false,
            }));
        }
        "group.leave" => {
            let g = p.address("group")?;
            c.leave(g).await.map_err(|e| match e {
                eth_mls::Error::RequestNotAllowed => Failure::usage(
                    "this account is the group's only admin",
                    "make another member an admin first, or keep the group",
                ),
                e => Failure::from_client(e),
            })?;
            json!({
                "group": format!("{g:#x}"),
                "requested": true,
                "note": "an admin removes this account when its client next runs",
            })
        }
        "group.update" => {
            let g = p.address("group")?;
            let before = c.epoch(g).map_err(Failure::from_client)?;
            c.update(g).await.map_err(Failure::from_client)?;
            return Ok(Outcome::Wait(merged_after(
                g,
                before,
                "waiting for the commit's confirmation and merge (s)",
                move |c| Ok(json!({ "group": format!("{g:#x}"), "epoch": c.epoch(g).ok() })),
            )));
        }
        "group.recover" => {
            let g = p.address("group")?;
            let remove = p.addresses("remove")?;
            let before = c.epoch(g).map_err(Failure::from_client)?;
            c.recover(g, &remove).await.map_err(|e| match e {
                eth_mls::Error::NotOwner { .. } => Failure::usage(
                    "only the group's owner can recover it",
                    "ask the owner to run `ethmls group recover`",
                ),
                eth_mls::Error::NotStalled { .. } => Failure::usage(
                    "the group is not stalled: there is nothing to replace",
                    "`ethmls doctor` shows each group's state",
                ),
                e => Failure::from_client(e),
            })?;
            let removed: Vec<String> = remove.iter().map(|a| format!("{a:#x}")).collect();
            return Ok(Outcome::Wait(merged_after(
                g,
                before,
                "waiting for the replacement's confirmation and merge (s)",
                move |c| {
                    Ok(
                        json!({ "group": format!("{g:#x}"), "epoch": c.epoch(g).ok(), "removed": removed }),
                    )
                },
            )));
        }
        other => {
            return Err(Failure::new(
                Kind::Usage,
                format!("no method named {other:?}"),
                "see the API in the README",
            )
            .tagged(out::Tag::NoMethod));
        }
    };
    Ok(Outcome::Done(done))
}

/// `register`: the prekey bundle and the gossip node's key, on the chain.
async fn register(c: &mut Cl, ctx: &Ctx) -> Result<Value, Failure> {
    let mut bar = out::Progress::new("registering (prekey bundle, node key)", 2);
    bar.set(0);
    c.publish_keys().await.map_err(Failure::from_client)?;
    bar.set(1);
    // The account's gossip node key, so members find its PeerId by its address.
    let node_key = crate::net::account_node_key(&ctx.key)?;
    let public = eth_mls_transport::ed25519_public_key(&node_key)
        .ok_or_else(|| Failure::new(Kind::Other, "the node key is not Ed25519", ""))?;
    ctx.chain
        .erc7627(ctx.deployment.erc7627)
        .publish_peer_key(&public, 0)
        .await
        .map_err(|e| {
            Failure::chain(
                e,
                "is the account funded? (on a local anvil: `ethmls fund ADDRESS`)",
            )
        })?;
    bar.set(2);
    bar.done();
    Ok(json!({
        "address": format!("{:#x}", c.address()),
        "peer_id": node_key.public().to_peer_id().to_base58(),
    }))
}

/// `group.accept`: the acceptance sent, then the wait for the inviter's add.
async fn accept(c: &mut Cl, p: &Params<'_>) -> Result<Wait, Failure> {
    let id = parse_request_id(p.str("id")?)?;
    let wait = p.u64_or("wait", 60)?.min(MAX_WAIT);
    let group = c
        .invitations()
        .map_err(Failure::from_client)?
        .into_iter()
        .find(|i| i.request.request_id == id)
        .map(|i| Address::from(i.request.group.group_contract))
        .ok_or_else(|| Failure::usage("no such invitation", "see `ethmls group requests`"))?;
    c.accept(id).await.map_err(Failure::from_client)?;
    // The inviter's client commits the add and sends the Welcome: wait for it.
    Ok(Wait {
        within: Duration::from_secs(wait),
        progress: Some("waiting for the inviter to add this account (s)"),
        done: Box::new(move |s| {
            s.iter()
                .any(|e| matches!(e, ClientEvent::Joined { group: g, .. } if *g == group))
        }),
        finish: Box::new(move |c, _| {
            let joined = c.is_active(group);
            let result = json!({ "group": format!("{group:#x}"), "joined": joined, "epoch": c.epoch(group).ok() });
            if !joined {
                // Accepted, not joined yet: the inviter's client has not added this account.
                return Err(Failure::new(
                    Kind::Other,
                    format!("accepted, but not added to {group:#x} within {wait} s"),
                    "the inviter's client adds this account when it next runs (its `watch`, \
                     `chat` or `sync`); then `ethmls sync` here joins. The acceptance is kept",
                )
                .with_result(result));
            }
            Ok(result)
        }),
        show_events: true,
    })
}

/// Waits until a commit of `g` past epoch `before` is merged (or the intent failed), then
/// [`committed`] and `then`.
fn merged_after(
    g: Address,
    before: u64,
    waiting: &'static str,
    then: impl FnOnce(&Cl) -> Result<Value, Failure> + Send + 'static,
) -> Wait {
    Wait {
        within: Duration::from_secs(60),
        progress: Some(waiting),
        done: Box::new(move |s| {
            s.iter().any(|e| {
                matches!(e, ClientEvent::CommitMerged { group, epoch, .. } if *group == g && *epoch > before)
                    || matches!(e, ClientEvent::IntentFailed { .. })
            })
        }),
        finish: Box::new(move |c, events| {
            committed(c, g, before, events)?;
            then(c)
        }),
        show_events: false,
    }
}

/// Fails when the change's intent failed or the epoch did not move.
fn committed(c: &Cl, g: Address, before: u64, events: &[ClientEvent]) -> Result<(), Failure> {
    if let Some(reason) = events.iter().find_map(|e| match e {
        ClientEvent::IntentFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    }) {
        return Err(Failure::new(
            Kind::Chain,
            format!("the change failed: {reason}"),
            "check that this account may commit in the group (`ethmls group members`)",
        ));
    }
    if c.epoch(g).unwrap_or(before) <= before {
        return Err(Failure::new(
            Kind::Chain,
            "the change was not committed in time",
            "it stays queued: run `ethmls sync` to finish it",
        ));
    }
    Ok(())
}

/// What the store says, from a running client or a [`LocalView`] of a closed one.
pub trait Reads {
    /// The groups followed.
    fn groups(&self) -> Vec<Address>;
    /// A group's epoch.
    fn epoch(&self, g: Address) -> Result<u64, eth_mls::Error>;
    /// Whether the account is a member.
    fn is_active(&self, g: Address) -> bool;
    /// A group's members.
    fn members(&self, g: Address) -> Result<Vec<Address>, eth_mls::Error>;
    /// A group's ACL.
    fn acl(&self, g: Address) -> Result<Acl, eth_mls::Error>;
    /// The epoch a group stalled at.
    fn stalled_at(&self, g: Address) -> Option<u64>;
    /// A group's kept messages.
    fn messages(&self, g: Address) -> Result<Vec<StoredMessage>, eth_mls::Error>;
}

macro_rules! reads {
    ($t:ty) => {
        impl Reads for $t {
            fn groups(&self) -> Vec<Address> {
                <$t>::groups(self)
            }
            fn epoch(&self, g: Address) -> Result<u64, eth_mls::Error> {
                <$t>::epoch(self, g)
            }
            fn is_active(&self, g: Address) -> bool {
                <$t>::is_active(self, g)
            }
            fn members(&self, g: Address) -> Result<Vec<Address>, eth_mls::Error> {
                <$t>::members(self, g)
            }
            fn acl(&self, g: Address) -> Result<Acl, eth_mls::Error> {
                <$t>::acl(self, g)
            }
            fn stalled_at(&self, g: Address) -> Option<u64> {
                <$t>::stalled(self, g).ok().flatten().map(|s| s.epoch)
            }
            fn messages(&self, g: Address) -> Result<Vec<StoredMessage>, eth_mls::Error> {
                <$t>::messages(self, g)
            }
        }
    };
}
reads!(Cl);
reads!(LocalView);

/// The methods answered from the store ([`is_local`]); `store` is `None` when the account
/// has no store yet.
pub fn local(store: &dyn Reads, method: &str, params: &Value) -> Result<Value, Failure> {
    let p = Params(params);
    Ok(match method {
        "read" => {
            let g = p.address("group")?;
            let stored = store.messages(g).map_err(|e| match e {
                eth_mls::Error::UnknownGroup { .. } => unknown_group(g),
                e => Failure::from_client(e),
            })?;
            let messages: Vec<Value> = stored
                .into_iter()
                .map(|m| {
                    let mut v = json!({
                        "sender": format!("{:#x}", m.sender),
                        "epoch": m.epoch,
                        "received_at": m.received_at,
                        "text": String::from_utf8_lossy(&m.data),
                    });
                    out::annotate(&mut v);
                    v
                })
                .collect();
            json!({ "group": format!("{g:#x}"), "active": store.is_active(g), "messages": messages })
        }
        "group.members" => {
            let g = p.address("group")?;
            let acl = store.acl(g).map_err(|_| unknown_group(g))?;
            let members: Vec<String> = store
                .members(g)
                .map_err(|_| unknown_group(g))?
                .into_iter()
                .map(|m| format!("{m:#x}"))
                .collect();
            json!({
                "group": format!("{g:#x}"),
                "epoch": store.epoch(g).ok(),
                "members": members,
                "owner": acl.owner.map(|o| format!("{o:#x}")),
                "admins": acl.admins.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>(),
                "active": store.is_active(g),
            })
        }
        "group.list" => {
            let groups: Vec<Value> = store
                .groups()
                .into_iter()
                .map(|g| {
                    json!({
                        "group": format!("{g:#x}"),
                        "epoch": store.epoch(g).ok(),
                        "active": store.is_active(g),
                        "members": store.members(g).map(|m| m.len()).unwrap_or(0),
                        "stalled": store.stalled_at(g),
                    })
                })
                .collect();
            json!({ "groups": groups })
        }
        other => {
            return Err(Failure::new(
                Kind::Other,
                format!("{other} is not answered from the store"),
                "",
            ));
        }
    })
}

/// [`local`] for an account with no store yet: no groups, no messages.
pub fn local_empty(method: &str, params: &Value) -> Result<Value, Failure> {
    match method {
        "group.list" => Ok(json!({ "groups": [] })),
        _ => Err(unknown_group(Params(params).address("group")?)),
    }
}

/// A group this account does not follow.
pub fn unknown_group(g: Address) -> Failure {
    Failure::usage(
        format!("this account does not follow the group {g:#x}"),
        "see `ethmls group list` (an invitation is accepted with `ethmls group accept`)",
    )
}

/// Prints a method's result as text where it is a list (the rest is printed by
/// [`Out::ok`]), marking what was printed.
pub fn show(method: &str, result: &Value, out: &Out) {
    if out.json {
        return;
    }
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    match method {
        "read" => {
            for m in result["messages"].as_array().into_iter().flatten() {
                say!(
                    "{} [epoch {}] {}: {}",
                    m["received_at"],
                    m["epoch"],
                    out::who(&s(&m["sender"])),
                    out::clean(&s(&m["text"]))
                );
            }
            out::printed("messages");
        }
        "group.requests" => {
            for i in result["invitations"].as_array().into_iter().flatten() {
                say!(
                    "{}  group {} from {}  {}",
                    s(&i["id"]),
                    s(&i["group"]),
                    out::who(&s(&i["from"])),
                    out::clean(&s(&i["note"]))
                );
            }
            out::printed("invitations");
        }
        "group.members" => {
            let owner = s(&result["owner"]);
            let admins: Vec<String> = result["admins"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            for m in result["members"].as_array().into_iter().flatten() {
                let m = s(m);
                let role = if owner == m {
                    "  owner"
                } else if admins.contains(&m) {
                    "  admin"
                } else {
                    ""
                };
                say!("{}{role}", out::who(&m));
            }
            out::printed("members");
        }
        "group.list" => {
            let groups = result["groups"].as_array().cloned().unwrap_or_default();
            for g in &groups {
                say!(
                    "{}  epoch {}  {} members{}{}",
                    s(&g["group"]),
                    g["epoch"],
                    g["members"],
                    if g["active"] == true {
                        ""
                    } else {
                        "  (left or removed)"
                    },
                    if g["stalled"].is_null() {
                        String::new()
                    } else {
                        format!("  stalled at {}", g["stalled"])
                    },
                );
            }
            if groups.is_empty() {
                say!("no groups yet: `ethmls group create NAME`, or accept an invitation");
            }
            out::printed("groups");
        }
        _ => {}
    }
}

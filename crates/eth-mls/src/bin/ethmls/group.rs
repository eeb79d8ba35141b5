//! `ethmls group ...`.

use std::path::Path;
use std::time::Duration;

use eth_mls::ClientEvent;
use eth_mls_chain::CommitPolicy;
use eth_mls_siwe::Address;
use serde_json::{Value, json};

use crate::args::{Cli, GroupCmd};
use crate::out::{self, Failure, Kind, Out};
use crate::{Cl, client, parse_address, parse_request_id, sync_until};

pub async fn run(cli: &Cli, home: &Path, cmd: &GroupCmd, out: &Out) -> Result<Value, Failure> {
    if let Some(result) = local(cli, home, cmd, out)? {
        return Ok(result);
    }
    let mut c = client(cli, home, out).await?;
    match cmd {
        GroupCmd::Create { name, any_member } => {
            let policy = if *any_member {
                CommitPolicy::AnyMember
            } else {
                CommitPolicy::AdminsOnly
            };
            out.progress("creating the group contract");
            let g = c
                .create_group(name.as_bytes(), policy)
                .await
                .map_err(Failure::from_client)?;
            Ok(json!({ "group": format!("{g:#x}"), "name": name, "epoch": c.epoch(g).ok() }))
        }
        GroupCmd::Invite {
            group,
            address,
            note,
        } => {
            let g = parse_address(group)?;
            let who = parse_address(address)?;
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
            Ok(json!({
                "group": format!("{g:#x}"),
                "invited": format!("{who:#x}"),
                "id": hex::encode(id),
                "next": "the invitee accepts with `ethmls group accept`; this account's client \
                         then adds it (keep `ethmls watch` or `chat` running, or run `ethmls sync`)",
            }))
        }
        GroupCmd::Requests => {
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
            if !out.json {
                for i in &list {
                    say!(
                        "{}  group {} from {}  {}",
                        i["id"].as_str().unwrap_or(""),
                        i["group"].as_str().unwrap_or(""),
                        out::who(i["from"].as_str().unwrap_or("")),
                        out::clean(i["note"].as_str().unwrap_or(""))
                    );
                }
                out::printed("invitations");
            }
            Ok(json!({ "invitations": list }))
        }
        GroupCmd::List | GroupCmd::Members { .. } => Err(Failure::new(
            Kind::Other,
            "answered from the store (see `local`)",
            "",
        )),
        GroupCmd::Accept { id, wait } => {
            let id = parse_request_id(id)?;
            let group = c
                .invitations()
                .map_err(Failure::from_client)?
                .into_iter()
                .find(|i| i.request.request_id == id)
                .map(|i| Address::from(i.request.group.group_contract))
                .ok_or_else(|| {
                    Failure::usage("no such invitation", "see `ethmls group requests`")
                })?;
            c.accept(id).await.map_err(Failure::from_client)?;
            // The inviter's client commits the add and sends the Welcome: wait for it.
            let waiting = Some("waiting for the inviter to add this account (s)");
            let events = sync_until(&mut c, Duration::from_secs(*wait), waiting, |s| {
                s.iter()
                    .any(|e| matches!(e, ClientEvent::Joined { group: g, .. } if *g == group))
            })
            .await?;
            let joined = c.is_active(group);
            for e in &events {
                out.event(&out::event_json(e));
            }
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
        }
        GroupCmd::Decline { id } => {
            let id = parse_request_id(id)?;
            c.decline(id).await.map_err(Failure::from_client)?;
            Ok(json!({ "declined": hex::encode(id) }))
        }
        GroupCmd::Remove { group, address } => {
            let g = parse_address(group)?;
            let who = parse_address(address)?;
            let before = c.epoch(g).map_err(Failure::from_client)?;
            c.remove(g, &[who]).await.map_err(Failure::from_client)?;
            let waiting = Some("waiting for the commit's confirmation and merge (s)");
            let events = sync_until(&mut c, Duration::from_secs(60), waiting, |s| {
                s.iter().any(|e| {
                    matches!(e, ClientEvent::MemberRemoved { group: gg, member } if *gg == g && *member == who)
                        || matches!(e, ClientEvent::IntentFailed { .. })
                })
            })
            .await?;
            committed(&c, g, before, &events)?;
            Ok(
                json!({ "group": format!("{g:#x}"), "removed": format!("{who:#x}"), "epoch": c.epoch(g).ok() }),
            )
        }
        GroupCmd::Leave { group } => {
            let g = parse_address(group)?;
            c.leave(g).await.map_err(|e| match e {
                eth_mls::Error::RequestNotAllowed => Failure::usage(
                    "this account is the group's only admin",
                    "make another member an admin first, or keep the group",
                ),
                e => Failure::from_client(e),
            })?;
            Ok(json!({
                "group": format!("{g:#x}"),
                "requested": true,
                "note": "an admin removes this account when its client next runs",
            }))
        }
        GroupCmd::Update { group } => {
            let g = parse_address(group)?;
            let before = c.epoch(g).map_err(Failure::from_client)?;
            c.update(g).await.map_err(Failure::from_client)?;
            merged_after(
                &mut c,
                g,
                before,
                "waiting for the commit's confirmation and merge (s)",
            )
            .await?;
            Ok(json!({ "group": format!("{g:#x}"), "epoch": c.epoch(g).ok() }))
        }
        GroupCmd::Recover { group, remove } => {
            let g = parse_address(group)?;
            let remove = remove
                .iter()
                .map(|a| parse_address(a))
                .collect::<Result<Vec<_>, _>>()?;
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
            let waiting = "waiting for the replacement's confirmation and merge (s)";
            merged_after(&mut c, g, before, waiting).await?;
            let removed: Vec<String> = remove.iter().map(|a| format!("{a:#x}")).collect();
            Ok(json!({ "group": format!("{g:#x}"), "epoch": c.epoch(g).ok(), "removed": removed }))
        }
    }
}

/// Syncs until a commit of `g` past epoch `before` is merged (or the intent failed), then
/// [`committed`].
async fn merged_after(c: &mut Cl, g: Address, before: u64, waiting: &str) -> Result<(), Failure> {
    let events = sync_until(c, Duration::from_secs(60), Some(waiting), |s| {
        s.iter().any(|e| {
            matches!(e, ClientEvent::CommitMerged { group: gg, epoch, .. } if *gg == g && *epoch > before)
                || matches!(e, ClientEvent::IntentFailed { .. })
        })
    })
    .await?;
    committed(c, g, before, &events)
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

/// The group commands that only read the store: answered with no chain or relay involved
/// (`requests` is not one: it takes in what arrived). `None` for the others.
fn local(cli: &Cli, home: &Path, cmd: &GroupCmd, out: &Out) -> Result<Option<Value>, Failure> {
    if !matches!(cmd, GroupCmd::List | GroupCmd::Members { .. }) {
        return Ok(None);
    }
    let view = crate::open::view(cli, home, out)?;
    let c = view.as_ref();
    let result = match cmd {
        GroupCmd::Members { group } => {
            let g = parse_address(group)?;
            let c = c.ok_or_else(|| unknown(g))?;
            let acl = c.acl(g).map_err(|_| unknown(g))?;
            let members: Vec<String> = c
                .members(g)
                .map_err(|_| unknown(g))?
                .into_iter()
                .map(|m| format!("{m:#x}"))
                .collect();
            if !out.json {
                for m in &members {
                    let a: Address = m.parse().unwrap_or_default();
                    let role = if acl.owner == Some(a) {
                        "  owner"
                    } else if acl.admins.contains(&a) {
                        "  admin"
                    } else {
                        ""
                    };
                    say!("{}{role}", out::who(m));
                }
                out::printed("members");
            }
            json!({
                "group": format!("{g:#x}"),
                "epoch": c.epoch(g).ok(),
                "members": members,
                "owner": acl.owner.map(|o| format!("{o:#x}")),
                "admins": acl.admins.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>(),
                "active": c.is_active(g),
            })
        }
        GroupCmd::List => {
            let groups: Vec<Value> = c
                .map(|c| {
                    c.groups()
                        .into_iter()
                        .map(|g| {
                            json!({
                                "group": format!("{g:#x}"),
                                "epoch": c.epoch(g).ok(),
                                "active": c.is_active(g),
                                "members": c.members(g).map(|m| m.len()).unwrap_or(0),
                                "stalled": c.stalled(g).ok().flatten().map(|s| s.epoch),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !out.json {
                for g in &groups {
                    say!(
                        "{}  epoch {}  {} members{}{}",
                        g["group"].as_str().unwrap_or(""),
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
            json!({ "groups": groups })
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

/// A group this account does not follow.
fn unknown(g: Address) -> Failure {
    Failure::usage(
        format!("this account does not follow the group {g:#x}"),
        "see `ethmls group list`",
    )
}

//! What the client reports, in order: the engine's events.

use eth_mls_siwe::Address;

use crate::Error;
use crate::wire::{ChangeKind, RejectReason, RequestId};

/// What happened, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// An application message.
    Message {
        /// The group's contract.
        group: Address,
        /// The sending account.
        sender: Address,
        /// The epoch it was sent in.
        epoch: u64,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// Messages that cannot be recovered any more.
    MissedMessages {
        /// The group.
        group: Address,
        /// Their sender.
        sender: Address,
        /// The epoch.
        epoch: u64,
        /// How many.
        count: u32,
    },
    /// A message of the group that can no longer be decrypted (its epoch's keys are gone: it
    /// arrived more than `max_past_epochs` epochs late): reported, never silently skipped.
    MessageLost {
        /// The group.
        group: Address,
        /// The epoch it was sent in.
        epoch: u64,
        /// Why it failed.
        reason: String,
    },
    /// This client joined a group (from a Welcome, checked against the chain).
    Joined {
        /// The group.
        group: Address,
        /// The epoch it joined.
        epoch: u64,
    },
    /// A commit was merged (own or another member's), after the chain-checked verdict.
    CommitMerged {
        /// The group.
        group: Address,
        /// The new epoch.
        epoch: u64,
        /// The committer.
        committer: Address,
    },
    /// A member entered the group.
    MemberAdded {
        /// The group.
        group: Address,
        /// The account.
        member: Address,
    },
    /// A member left the group or was removed.
    MemberRemoved {
        /// The group.
        group: Address,
        /// The account.
        member: Address,
    },
    /// This account was removed from the group: nothing sent to it from now on can be read.
    Removed {
        /// The group.
        group: Address,
    },
    /// An invitation arrived (checked: a group of the trusted factory on this chain).
    InvitationReceived {
        /// Its id: [`Client::accept`](crate::Client::accept) or [`Client::decline`](crate::Client::decline) it.
        request_id: RequestId,
        /// The inviting account.
        from: Address,
        /// The group.
        group: Address,
        /// The inviter's note.
        note: String,
    },
    /// An invitation of this client was declined.
    InvitationDeclined {
        /// The invitation.
        request_id: RequestId,
        /// The invitee.
        from: Address,
    },
    /// A member asked this admin for an update or a removal; it was verified and is being
    /// committed.
    RequestReceived {
        /// The group.
        group: Address,
        /// The requester.
        from: Address,
        /// What it asked for.
        kind: ChangeKind,
    },
    /// A request of this client was refused.
    RequestRejected {
        /// The request.
        request_id: RequestId,
        /// By whom.
        from: Address,
        /// Why.
        reason: RejectReason,
    },
    /// The chain reorganised below the blocks this client had read of the group (deeper than
    /// the configured confirmations): its events were read again. `dropped` lists the epochs
    /// this member had merged whose registrations the reorg removed (empty: nothing it acted
    /// on was lost). This account registers its own again; another member's is registered
    /// again by that member, and a different commit taking its place is reported as
    /// [`ClientEvent::ForkDetected`].
    ChainReorganized {
        /// The group.
        group: Address,
        /// The last block read that the chain no longer has.
        block: u64,
        /// The merged epochs no longer registered.
        dropped: Vec<u64>,
    },
    /// This member merged a commit that the chain dropped (the owner replaced it): it left
    /// the group's line and asked an admin to re-add it.
    ForkDetected {
        /// The group.
        group: Address,
        /// The first epoch whose merged commit the chain dropped.
        epoch: u64,
        /// Why.
        reason: String,
    },
    /// The group is stalled at `epoch`: the commit registered for `epoch + 1` does not
    /// decode, verify or match its registration (security review H2). The member keeps its
    /// state and stays subscribed; the owner replaces that commit ([`Client::recover`](crate::Client::recover)),
    /// which the member then processes. Not a fork.
    Stalled {
        /// The group.
        group: Address,
        /// The epoch the member is at.
        epoch: u64,
        /// Why the next registered commit was refused.
        reason: String,
    },
    /// A registered commit could not be judged now (an RPC or ERC-1271 check failed): it is
    /// tried again at the next sync (security review M1).
    MergeDelayed {
        /// The group.
        group: Address,
        /// The registered epoch.
        epoch: u64,
        /// The failure.
        error: Error,
    },
    /// The account's credential expires soon: [`Client::renew_credential`](crate::Client::renew_credential).
    CredentialDue {
        /// Its expiration (Unix seconds).
        expires_at: i64,
    },
    /// A member's credential expired: an admin should remove it.
    MemberDue {
        /// The group.
        group: Address,
        /// The member.
        member: Address,
    },
    /// An own commit lost its epoch to another member's: its intent is rebuilt on the next
    /// epoch (up to [`crate::intent::MAX_ATTEMPTS`] times).
    EpochLost {
        /// The group.
        group: Address,
        /// The intent.
        intent: u64,
        /// The epoch it was built for.
        epoch: u64,
    },
    /// An own change gave up or failed for good.
    IntentFailed {
        /// The group.
        group: Address,
        /// The intent.
        intent: u64,
        /// Why.
        reason: String,
    },
    /// Frames of the group could not be published now (no peer, delivery down): they stay
    /// in the outbox and go out, in order, at a later sync.
    DeliveryDelayed {
        /// The group.
        group: Address,
        /// Why.
        error: Error,
    },
    /// A 1:1 message that kept failing for a reason that may pass was given up on after
    /// [`INCOMING_ATTEMPTS`](crate::client::INCOMING_ATTEMPTS) tries (it is kept in the store's dead letters).
    DeadLetter {
        /// The account that sent it.
        from: Address,
        /// Why ([`Error::GaveUp`], with the last failure).
        error: Error,
    },
    /// Something that arrived was refused (it changed nothing).
    Rejected {
        /// Where it came from (an account, or the zero address when unknown).
        from: Address,
        /// Why.
        error: Error,
    },
}

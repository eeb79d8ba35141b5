//! The chain-checked merge (DESIGN.md decisions 11 and 12): whether a commit may be merged,
//! judged only from the MLS state at epoch `n` and the chain at the registration block, so
//! every member reaches the same verdict. Pure functions: the client feeds them the
//! registration (from the `CommitRegistered` log), the ACL at that block, the commit's bytes
//! and what eth-mls-core staged from them (credentials and ERC-1271 already checked at the
//! registration block through `Checks::at(block timestamp)`).

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::keccak256;
use eth_mls_core::CommitSummary;
use eth_mls_siwe::Address;

use crate::Error;

/// Who may commit (the group contract's `commitPolicy`, fixed at creation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Policy {
    /// Only the owner and admins.
    AdminsOnly,
    /// Any member; commits that change the ACL still need the owner or an admin.
    AnyMember,
}

/// A commit's registration on the group contract (`CommitRegistered`), with the block it was
/// mined in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    /// The epoch the commit starts (`n + 1`).
    pub epoch: u64,
    /// The account that registered it (informative, decision 11).
    pub registrant: Address,
    /// `keccak256` of the commit bytes.
    pub commit_hash: [u8; 32],
    /// `keccak256` of the epoch authenticator of epoch `n + 1`.
    pub epoch_authenticator_hash: [u8; 32],
    /// Accounts the commit adds (its Add proposals), in order.
    pub added: Vec<Address>,
    /// `keccak256` of each added account's key package.
    pub key_packages: Vec<[u8; 32]>,
    /// Accounts the commit removes (its Remove proposals).
    pub removed: Vec<Address>,
    /// The block number.
    pub block: u64,
    /// The block's timestamp: the reference time of every check (decision 12).
    pub timestamp: i64,
}

/// The ACL at the registration block (before the registration's own changes).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Acl {
    /// The owner.
    pub owner: Option<Address>,
    /// Admins besides the owner.
    pub admins: BTreeSet<Address>,
    /// Members (the owner and admins included).
    pub members: BTreeSet<Address>,
}

impl Acl {
    /// Whether `a` is the owner or an admin.
    pub fn is_admin(&self, a: &Address) -> bool {
        self.owner.as_ref() == Some(a) || self.admins.contains(a)
    }
}

/// `keccak256` of an epoch authenticator: what a committer registers and members compare.
pub fn epoch_authenticator_hash(authenticator: &[u8]) -> [u8; 32] {
    keccak256(authenticator).0
}

fn counts(v: &[Address]) -> BTreeMap<Address, usize> {
    let mut m = BTreeMap::new();
    for a in v {
        *m.entry(*a).or_default() += 1;
    }
    m
}

/// Checks a staged commit against its registration before merging, in this order:
///
/// 1. the registration is for `local_epoch + 1` ([`Error::WrongEpoch`]);
/// 2. the bytes are the registered ones ([`Error::CommitHashMismatch`]);
/// 3. it carries no proposal other than Add, Remove and Update
///    ([`Error::UnaccountedProposals`]: a GroupContextExtensions, PSK or ReInit proposal that
///    rode along would change the group past what the registration says; review H1); its
///    Add and Remove proposals are exactly the registered ACL changes, as multisets
///    ([`Error::AclMismatch`]), and each added key package is the one the contract recorded
///    for that account ([`Error::KeyPackageMismatch`]: the pairs (account, `keccak256` of the
///    key package) of the registration and of the commit are the same multiset; security
///    review M5 — a recorded hash that names no key package in the commit made the
///    one-time key-package record meaningless);
/// 4. the MLS committer's role at the block fits the policy ([`Error::CommitterNotAllowed`]):
///    an admin (or the owner), or under [`Policy::AnyMember`] any member when the commit
///    changes no membership.
///
/// After merging, [`check_epoch_authenticator`] completes the verdict.
pub fn check_commit(
    local_epoch: u64,
    commit: &[u8],
    reg: &Registration,
    staged: &CommitSummary,
    policy: Policy,
    acl: &Acl,
) -> Result<(), Error> {
    if Some(reg.epoch) != local_epoch.checked_add(1) || staged.new_epoch != reg.epoch {
        return Err(Error::WrongEpoch {
            registered: reg.epoch,
            local: local_epoch,
        });
    }
    if keccak256(commit).0 != reg.commit_hash {
        return Err(Error::CommitHashMismatch);
    }
    if !staged.other_proposals.is_empty() {
        // GroupContextExtensions, PSK, ReInit, …: no registration accounts for them.
        return Err(Error::UnaccountedProposals {
            types: staged.other_proposals.clone(),
        });
    }
    if counts(&staged.added) != counts(&reg.added)
        || counts(&staged.removed) != counts(&reg.removed)
        || reg.key_packages.len() != reg.added.len()
    {
        return Err(Error::AclMismatch {
            proposed_added: staged.added.clone(),
            proposed_removed: staged.removed.clone(),
            registered_added: reg.added.clone(),
            registered_removed: reg.removed.clone(),
        });
    }
    let pairs = |added: &[Address], hashes: &[[u8; 32]]| {
        let mut m: BTreeMap<(Address, [u8; 32]), usize> = BTreeMap::new();
        for p in added.iter().copied().zip(hashes.iter().copied()) {
            *m.entry(p).or_default() += 1;
        }
        m
    };
    if staged.added_key_packages.len() != staged.added.len()
        || pairs(&staged.added, &staged.added_key_packages) != pairs(&reg.added, &reg.key_packages)
    {
        return Err(Error::KeyPackageMismatch);
    }
    let changes_acl = !reg.added.is_empty() || !reg.removed.is_empty();
    let allowed = acl.is_admin(&staged.committer)
        || (policy == Policy::AnyMember && !changes_acl && acl.members.contains(&staged.committer));
    if !allowed {
        return Err(Error::CommitterNotAllowed {
            committer: staged.committer,
        });
    }
    Ok(())
}

/// After merging: the new epoch's authenticator must be the registered one
/// ([`Error::EpochAuthenticatorMismatch`]: this member forked and must rejoin).
pub fn check_epoch_authenticator(reg: &Registration, authenticator: &[u8]) -> Result<(), Error> {
    if epoch_authenticator_hash(authenticator) != reg.epoch_authenticator_hash {
        return Err(Error::EpochAuthenticatorMismatch { epoch: reg.epoch });
    }
    Ok(())
}

/// One event of a group contract, as the engine needs it (the driver decodes the contract's
/// logs into these: [`crate::facts::group_fact`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupFact {
    /// `GroupInitialized`: the owner and the commit policy.
    Initialized {
        /// The owner (also a member).
        owner: Address,
        /// Who may commit.
        policy: Policy,
    },
    /// `MemberAdded`.
    MemberAdded(Address),
    /// `MemberRemoved`.
    MemberRemoved(Address),
    /// `MemberLeft` (the account left by itself).
    MemberLeft(Address),
    /// `AdminChanged`.
    AdminChanged {
        /// The member.
        member: Address,
        /// Whether it is an admin now.
        is_admin: bool,
    },
    /// `OwnershipTransferred`.
    OwnershipTransferred(Address),
    /// `CommitRegistered` (its [`Registration`] is read with its block's time).
    CommitRegistered,
    /// Any other event (nothing for the ACL).
    Other,
}

/// The group's ACL as its contract's events build it, so that a registration is judged
/// against the ACL of its own block (decision 12), not today's. Feed every event of the
/// group in log order with its transaction hash; [`AclMirror::apply`] returns, for a
/// `CommitRegistered`, the ACL before its transaction (the contract applies the commit's own
/// ACL changes, and emits their events, before `CommitRegistered`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclMirror {
    acl: Acl,
    policy: Option<Policy>,
    /// The transaction of the last event and the ACL before it.
    tx: Option<[u8; 32]>,
    before_tx: Acl,
}

impl AclMirror {
    /// An empty mirror (before the group's `GroupInitialized`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The ACL after the events applied so far.
    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    /// The policy from `GroupInitialized`, once seen.
    pub fn policy(&self) -> Option<Policy> {
        self.policy
    }

    /// Applies one event of the group contract, emitted by transaction `tx` (`None` when
    /// unknown: the event is then taken as its own transaction); for a `CommitRegistered`,
    /// returns the ACL it is judged against.
    pub fn apply(&mut self, fact: &GroupFact, tx: Option<[u8; 32]>) -> Option<Acl> {
        if tx.is_none() || tx != self.tx {
            self.before_tx = self.acl.clone();
            self.tx = tx;
        }
        match *fact {
            GroupFact::Initialized { owner, policy } => {
                self.acl.owner = Some(owner);
                self.acl.members.insert(owner);
                self.policy = Some(policy);
            }
            GroupFact::MemberAdded(member) => {
                self.acl.members.insert(member);
            }
            GroupFact::MemberRemoved(member) | GroupFact::MemberLeft(member) => {
                self.acl.members.remove(&member);
                self.acl.admins.remove(&member);
            }
            GroupFact::AdminChanged { member, is_admin } => {
                if is_admin {
                    self.acl.admins.insert(member);
                } else {
                    self.acl.admins.remove(&member);
                }
            }
            GroupFact::OwnershipTransferred(owner) => {
                self.acl.owner = Some(owner);
            }
            GroupFact::CommitRegistered => return Some(self.before_tx.clone()),
            GroupFact::Other => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(b: u8) -> Address {
        Address::repeat_byte(b)
    }

    fn setup() -> (Vec<u8>, Registration, CommitSummary, Acl) {
        let commit = b"commit bytes".to_vec();
        let reg = Registration {
            epoch: 5,
            registrant: a(1),
            commit_hash: keccak256(&commit).0,
            epoch_authenticator_hash: epoch_authenticator_hash(b"auth"),
            added: vec![a(3), a(4)],
            key_packages: vec![[3; 32], [4; 32]],
            removed: vec![a(5)],
            block: 10,
            timestamp: 1_785_000_000,
        };
        let staged = CommitSummary {
            committer: a(1),
            added: vec![a(4), a(3)],
            added_key_packages: vec![[4; 32], [3; 32]],
            removed: vec![a(5)],
            updated: vec![],
            other_proposals: vec![],
            new_epoch: 5,
            self_removed: false,
        };
        let acl = Acl {
            owner: Some(a(1)),
            admins: [a(2)].into(),
            members: [a(1), a(2), a(5), a(6)].into(),
        };
        (commit, reg, staged, acl)
    }

    #[test]
    fn a_matching_commit_passes() {
        let (commit, reg, staged, acl) = setup();
        check_commit(4, &commit, &reg, &staged, Policy::AdminsOnly, &acl)
            .unwrap_or_else(|e| panic!("{e}"));
        check_epoch_authenticator(&reg, b"auth").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            check_epoch_authenticator(&reg, b"other"),
            Err(Error::EpochAuthenticatorMismatch { epoch: 5 })
        );
    }

    /// H1: a GroupContextExtensions (8), PSK (4) or ReInit (5) proposal that rode along is
    /// refused, whoever committed it.
    #[test]
    fn proposals_no_registration_accounts_for_are_refused() {
        for t in [4u16, 5, 8, 0x0a0a] {
            let (commit, reg, mut staged, acl) = setup();
            staged.other_proposals = vec![t];
            assert_eq!(
                check_commit(4, &commit, &reg, &staged, Policy::AdminsOnly, &acl),
                Err(Error::UnaccountedProposals { types: vec![t] })
            );
        }
    }

    #[test]
    fn each_mismatch_is_its_error() {
        let (commit, reg, staged, acl) = setup();
        let check = |c: &[u8], r: &Registration, s: &CommitSummary, p, acl: &Acl| {
            check_commit(4, c, r, s, p, acl)
        };
        assert!(matches!(
            check_commit(5, &commit, &reg, &staged, Policy::AdminsOnly, &acl),
            Err(Error::WrongEpoch { .. })
        ));
        assert_eq!(
            check(b"other bytes", &reg, &staged, Policy::AdminsOnly, &acl),
            Err(Error::CommitHashMismatch)
        );
        let mut s = staged.clone();
        s.removed.clear();
        assert!(matches!(
            check(&commit, &reg, &s, Policy::AdminsOnly, &acl),
            Err(Error::AclMismatch { .. })
        ));
        let mut s = staged.clone();
        s.added.push(a(3));
        assert!(matches!(
            check(&commit, &reg, &s, Policy::AdminsOnly, &acl),
            Err(Error::AclMismatch { .. })
        ));
        let mut r = reg.clone();
        r.key_packages.pop();
        assert!(matches!(
            check(&commit, &r, &staged, Policy::AdminsOnly, &acl),
            Err(Error::AclMismatch { .. })
        ));
        // M5: a recorded hash that is not the added key package's, or hashes swapped between
        // the added accounts.
        let mut r = reg.clone();
        r.key_packages[0] = [9; 32];
        assert_eq!(
            check(&commit, &r, &staged, Policy::AdminsOnly, &acl),
            Err(Error::KeyPackageMismatch)
        );
        let mut r = reg.clone();
        r.key_packages.swap(0, 1);
        assert_eq!(
            check(&commit, &r, &staged, Policy::AdminsOnly, &acl),
            Err(Error::KeyPackageMismatch)
        );
        let mut s = staged.clone();
        s.added_key_packages.clear();
        assert_eq!(
            check(&commit, &reg, &s, Policy::AdminsOnly, &acl),
            Err(Error::KeyPackageMismatch)
        );
        // A plain member may not commit under AdminsOnly, nor change the ACL under AnyMember.
        let mut s = staged.clone();
        s.committer = a(6);
        assert!(matches!(
            check(&commit, &reg, &s, Policy::AdminsOnly, &acl),
            Err(Error::CommitterNotAllowed { .. })
        ));
        assert!(matches!(
            check(&commit, &reg, &s, Policy::AnyMember, &acl),
            Err(Error::CommitterNotAllowed { .. })
        ));
        // ...but may commit an update under AnyMember; a non-member never.
        let mut r = reg.clone();
        (r.added, r.key_packages, r.removed) = (vec![], vec![], vec![]);
        let mut s = staged.clone();
        (s.added, s.added_key_packages, s.removed, s.committer) = (vec![], vec![], vec![], a(6));
        assert_eq!(check(&commit, &r, &s, Policy::AnyMember, &acl), Ok(()));
        assert!(check(&commit, &r, &s, Policy::AdminsOnly, &acl).is_err());
        s.committer = a(9);
        assert!(check(&commit, &r, &s, Policy::AnyMember, &acl).is_err());
        // An admin other than the owner may.
        let mut s = staged.clone();
        s.committer = a(2);
        assert_eq!(check(&commit, &reg, &s, Policy::AdminsOnly, &acl), Ok(()));
    }
}

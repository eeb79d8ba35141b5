//! MLS groups of Ethereum accounts: [`Group`].
//!
//! Every operation runs in one SQLite transaction of the [`Store`]; an operation that fails
//! (a message that does not decrypt, a credential that does not verify, …) rolls back and
//! reloads the group, so the persisted and the in-memory state are exactly as before.
//!
//! **Application messages.** The plaintext is exactly the application's bytes, so any RFC
//! 9420 implementation reads them. The sender's application-ratchet generation in the
//! epoch (0, 1, …) travels in the PrivateMessage's `authenticated_data` (authenticated, not
//! encrypted) as `"EMG1" || uint32 generation` (8 bytes), because openmls does not report the
//! generation a message was decrypted with. Receivers use it to report gaps as
//! [`Event::MissedMessages`]; messages without it (from other implementations) carry no
//! generation and report no gaps. The MLS layer itself rejects reused generations.

use std::collections::BTreeSet;

use eth_mls_crypto::{Backend, SUITE, SignatureKeyPair, capabilities};
use eth_mls_siwe::{Address, Erc1271Verifier};
use openmls::prelude::{
    Ciphersuite, Credential, Extensions, GroupId, LeafNodeIndex, LeafNodeParameters,
    MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY, MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig,
    MlsMessageBodyIn, MlsMessageIn, MlsMessageOut, PURE_CIPHERTEXT_WIRE_FORMAT_POLICY,
    ProcessedMessageContent, Proposal, ProtocolMessage, QueuedProposal, Sender,
    SenderRatchetConfiguration, StagedCommit,
};
use std::sync::Arc;

use eth_mls_crypto::{SignedMessage, VerifiedSignatures};
use openmls::prelude::{
    Extension, LeafNode, ProcessedWelcome, RatchetTreeIn, RequiredCapabilitiesExtension,
};
use openmls::treesync::{LeafNodeSource, Node};
use serde::{Deserialize, Serialize};
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};

use crate::Error;
use crate::binding::{GROUP_BINDING_EXTENSION_TYPE, GroupBinding};
use crate::credential::{
    BindingPolicy, CredentialError, EthereumCredential, credential_type, verify_credential,
};
use crate::journal::{self, OutboxEntry, OutboxKind, Processed};
use crate::key_package::ValidatedKeyPackage;
use crate::store::{Store, StoreProvider, tables};

/// The operations whose steps the crash tests stop at (see [`crate::STEPS`]).
#[derive(Clone, Copy, Debug)]
enum Op {
    Send,
    Process,
    Commit,
    Merge,
    Join,
    Other,
}

impl Op {
    fn before_commit(self) -> &'static str {
        match self {
            Self::Send => "send:before-commit",
            Self::Process => "process:before-commit",
            Self::Commit => "commit:before-commit",
            Self::Merge => "merge:before-commit",
            Self::Join => "join:before-commit",
            Self::Other => "other:before-commit",
        }
    }

    fn after_commit(self) -> &'static str {
        match self {
            Self::Send => "send:after-commit",
            Self::Process => "process:after-commit",
            Self::Commit => "commit:after-commit",
            Self::Merge => "merge:after-commit",
            Self::Join => "join:after-commit",
            Self::Other => "other:after-commit",
        }
    }
}

/// What a verdict about a group change is judged by (DESIGN.md decision 12), so that every
/// member reaches the same one: the reference time (the timestamp of the block that
/// registered the change; never the local clock) for credential validity windows, and the
/// ERC-1271 verifier (pinned to that block) for contract accounts.
#[derive(Clone, Copy)]
pub struct Checks<'a> {
    /// The reference time, Unix seconds.
    pub at: i64,
    /// The ERC-1271 verifier for contract accounts (`None`: only EIP-191 signatures pass).
    pub erc1271: Option<&'a dyn Erc1271Verifier>,
}

impl<'a> Checks<'a> {
    /// Checks at `at` (Unix seconds), EIP-191 only.
    pub fn at(at: i64) -> Self {
        Self { at, erc1271: None }
    }

    /// The same, with an ERC-1271 verifier for contract accounts.
    pub fn with_erc1271(self, erc1271: &'a dyn Erc1271Verifier) -> Self {
        Self {
            erc1271: Some(erc1271),
            ..self
        }
    }
}

impl std::fmt::Debug for Checks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checks")
            .field("at", &self.at)
            .field("erc1271", &self.erc1271.is_some())
            .finish()
    }
}

/// When a leaf's credential validity window is checked.
#[derive(Clone, Copy, Debug)]
enum Window {
    /// At the reference time of the change that brings the leaf in or changes it.
    At(i64),
    /// At the credential's own issuance (or not-before) time: for leaves already in a
    /// Welcome's tree, which were checked when they entered; a credential that expired since
    /// makes its leaf due for removal, not the group unjoinable.
    WhenIssued,
}

/// A group's policy: where its members' credentials are valid, and decision 7's wire format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConfig {
    /// The chain of the group's contract: members' SIWE bindings must name it.
    pub chain_id: u64,
    /// The domain members sign in to: members' SIWE bindings must name it.
    pub domain: String,
    /// Application messages are padded with zeros to a multiple of this many bytes
    /// (0: no padding). Default 256.
    pub padding_block: usize,
    /// Accept `PublicMessage` handshakes from other implementations (we always send
    /// `PrivateMessage`). Default true.
    pub accept_plaintext_handshakes: bool,
    /// How many generations behind the newest a message may arrive and still decrypt.
    /// Default 5.
    pub out_of_order_tolerance: u32,
    /// How many generations ahead of the newest a message may jump. Default 1000.
    pub max_forward_distance: u32,
    /// How many past epochs keep their keys, for messages that arrive after a commit.
    /// Default 2.
    pub max_past_epochs: usize,
    /// The group's contract (decision 13): a group created with it carries it in a required
    /// GroupContext extension, and a Welcome is joined only when it carries exactly this.
    /// `None` (the default of [`GroupConfig::new`]): groups without a contract, for tests
    /// and off-chain use. Set it with [`GroupConfig::bound_to`].
    #[serde(default)]
    pub binding: Option<GroupBinding>,
}

impl GroupConfig {
    /// The defaults above for a group on `chain_id` whose members sign in to `domain`.
    pub fn new(chain_id: u64, domain: impl Into<String>) -> Self {
        Self {
            chain_id,
            domain: domain.into(),
            padding_block: 256,
            accept_plaintext_handshakes: true,
            out_of_order_tolerance: 5,
            max_forward_distance: 1000,
            max_past_epochs: 2,
            binding: None,
        }
    }

    /// The same policy for the group of `contract`, created by `factory`, on this chain.
    pub fn bound_to(mut self, factory: Address, contract: Address) -> Self {
        self.binding = Some(GroupBinding {
            chain_id: self.chain_id,
            factory,
            contract,
        });
        self
    }

    /// The credential policy, validity windows checked at the current time: for checks
    /// before a change (e.g. validating a key package before inviting). Verdicts about a
    /// group change use [`GroupConfig::policy_at`] with the change's reference time.
    pub fn policy(&self) -> BindingPolicy {
        BindingPolicy {
            chain_id: self.chain_id,
            domain: self.domain.clone(),
            time: None,
        }
    }

    /// The credential policy with validity windows checked at `at` (Unix seconds).
    pub fn policy_at(&self, at: i64) -> BindingPolicy {
        BindingPolicy {
            chain_id: self.chain_id,
            domain: self.domain.clone(),
            time: Some(eth_mls_siwe::TimeStamp::from_unix(at)),
        }
    }

    fn join_config(&self) -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .wire_format_policy(self.wire_format())
            .padding_size(self.padding_block)
            .sender_ratchet_configuration(self.ratchet())
            .max_past_epochs(self.max_past_epochs)
            .use_ratchet_tree_extension(true)
            .build()
    }

    fn wire_format(&self) -> openmls::prelude::WireFormatPolicy {
        if self.accept_plaintext_handshakes {
            MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY
        } else {
            PURE_CIPHERTEXT_WIRE_FORMAT_POLICY
        }
    }

    fn ratchet(&self) -> SenderRatchetConfiguration {
        SenderRatchetConfiguration::new(self.out_of_order_tolerance, self.max_forward_distance)
    }
}

/// A commit this member created, waiting to be merged (after the delivery service or the
/// group contract accepted it) or discarded. It survives a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingCommit {
    /// The commit (`MlsMessage`, `PrivateMessage` wire format) to send to the group.
    pub commit: Vec<u8>,
    /// The Welcome (`MlsMessage`, carrying the ratchet tree) for added members, if any.
    pub welcome: Option<Vec<u8>>,
    /// What the commit does.
    pub summary: CommitSummary,
    /// The commit's outbox entry ([`crate::Store::mark_published`] once published). The
    /// Welcome enters the outbox when the commit is merged.
    pub outbox: u64,
    /// The epoch authenticator of the epoch the commit starts: its hash is registered with
    /// the commit on the group contract, and every member compares it after merging.
    pub epoch_authenticator: Vec<u8>,
}

/// What a commit changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSummary {
    /// The member who committed.
    pub committer: Address,
    /// Accounts added.
    pub added: Vec<Address>,
    /// `keccak256` of each added key package's TLS encoding, in the order of `added`: what
    /// the group contract records for the add (and the invitee's consent names).
    #[serde(default)]
    pub added_key_packages: Vec<[u8; 32]>,
    /// Accounts removed.
    pub removed: Vec<Address>,
    /// Members whose leaf changed (update proposals, and the committer when the commit
    /// carries an update path).
    pub updated: Vec<Address>,
    /// Proposals of any other type (GroupContextExtensions, PreSharedKey, ReInit, …), by
    /// their type codes: nothing an eth-mls flow commits, so a registration never accounts
    /// for them (security review H1).
    #[serde(default)]
    pub other_proposals: Vec<u16>,
    /// The epoch the group enters when the commit is merged.
    pub new_epoch: u64,
    /// Whether the local member is removed by it.
    pub self_removed: bool,
}

/// A proposal's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalKind {
    /// Add this account.
    Add(Address),
    /// Remove this account.
    Remove(Address),
    /// The sender updates its leaf.
    Update,
    /// Any other proposal type (by its code).
    Other(u16),
}

/// A received proposal, stored for a later commit by reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalSummary {
    /// Who proposed.
    pub sender: Address,
    /// What.
    pub kind: ProposalKind,
    /// The proposal reference (RFC 9420 §5.2) a commit refers to it by.
    pub reference: Vec<u8>,
}

/// A decrypted application message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationMessage {
    /// The sending account.
    pub sender: Address,
    /// The sender's leaf.
    pub sender_leaf: u32,
    /// The application bytes.
    pub data: Vec<u8>,
    /// The epoch it was sent in.
    pub epoch: u64,
    /// The sender's generation in that epoch, when the sender said it (eth-mls senders do;
    /// see the module documentation).
    pub generation: Option<u32>,
}

/// The outcome of [`Group::process`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An application message.
    Application(ApplicationMessage),
    /// A commit, staged: call [`Group::merge_staged_commit`] to enter the new epoch or
    /// [`Group::discard_staged_commit`] to drop it. It survives a restart.
    StagedCommit(CommitSummary),
    /// A proposal, verified and stored for the next commit.
    Proposal(ProposalSummary),
    /// Messages of `sender` in `epoch` were skipped: `missed` generations before the one
    /// that just arrived (they may still arrive out of order).
    MissedMessages {
        /// The sender.
        sender: Address,
        /// The epoch.
        epoch: u64,
        /// How many generations were skipped.
        missed: u32,
    },
    /// The local member's own message came back from the delivery service (nothing to do).
    OwnMessage,
}

/// An MLS group whose members are Ethereum accounts, persisted in a [`Store`].
#[derive(Debug)]
pub struct Group {
    mls: MlsGroup,
    config: GroupConfig,
    /// A received commit waiting for merge or discard, with its committer.
    incoming: Option<(StagedCommit, Address)>,
    /// Set while an operation is between its begin and its commit; a group found dirty
    /// (its future was dropped mid-way) is reloaded before the next operation.
    dirty: bool,
    /// Members' addresses by leaf, with the credential each was read from: a message's
    /// sender is found without parsing its SIWE credential again.
    addresses: std::sync::Mutex<std::collections::HashMap<u32, (Credential, Address)>>,
}

fn openmls<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Mls {
        what,
        reason: format!("{e:?}"),
    }
}

/// Builds, signs and stages a commit whose proposals and options `proposals` sets on openmls's
/// commit builder; returns the commit and the Welcome, if it adds anyone.
///
/// Without a GroupInfo for export: with the ratchet tree extension on (it is, so a Welcome
/// carries the tree), openmls's own `add_members`, `remove_members`, `self_update` and
/// `commit_to_pending_proposals` also sign a second GroupInfo besides the Welcome's (plus the
/// external public key, for external joins, which eth-mls does not offer), carrying the whole
/// tree: at 1000 members an Ed448 signature over ~870 KB (4.7 ms) and its encoding, thrown away.
///
/// Exactly the proposals `proposals` names go in, plus the stored proposals whose references
/// are in `by_reference` (security review H1: openmls's builder takes every stored proposal
/// by default, so a proposal anyone published rode along in the next commit).
fn build_commit<B: Backend>(
    mls: &mut MlsGroup,
    provider: &StoreProvider<'_, B>,
    signer: &impl openmls_traits::signatures::Signer,
    aad: Vec<u8>,
    by_reference: &[Vec<u8>],
    proposals: impl for<'a> FnOnce(
        openmls::group::CommitBuilder<'a, openmls::group::Initial>,
    ) -> openmls::group::CommitBuilder<'a, openmls::group::Initial>,
) -> Result<(MlsMessageOut, Option<MlsMessageOut>), String> {
    use openmls_traits::OpenMlsProvider as _;
    // What openmls's own commit methods check first (its builder does not).
    if !mls.is_active() {
        return Err("the group is inactive: this member was removed".into());
    }
    if mls.pending_commit().is_some() {
        return Err("a commit is pending".into());
    }
    if let Some(missing) = by_reference.iter().find(|r| {
        !mls.pending_proposals()
            .any(|q| q.proposal_reference_ref().as_slice() == r.as_slice())
    }) {
        return Err(format!(
            "no stored proposal with reference {}",
            hex::encode(missing)
        ));
    }
    mls.set_aad(aad);
    let builder = mls
        .commit_builder()
        .consume_proposal_store(!by_reference.is_empty());
    let bundle = proposals(builder)
        .load_psks(provider.storage())
        .map_err(|e| format!("{e:?}"))?
        .create_group_info(false)
        .build(provider.rand(), provider.crypto(), signer, |q| {
            // The builder's own proposals, and of the stored ones only those named.
            q.proposal_or_ref_type() == openmls::prelude::ProposalOrRefType::Proposal
                || by_reference
                    .iter()
                    .any(|r| q.proposal_reference_ref().as_slice() == r.as_slice())
        })
        .map_err(|e| format!("{e:?}"))?
        .stage_commit(provider)
        .map_err(|e| format!("{e:?}"))?;
    let welcome = bundle.to_welcome_msg();
    let (commit, _, _) = bundle.into_contents();
    Ok((commit, welcome))
}

/// The authenticated data of an `MLSMessage(PrivateMessage)` (clear text in the frame; the
/// message's AEAD covers it, so once the message was processed these are the bytes its sender
/// authenticated). Any other message has none: empty.
pub fn authenticated_data(message: &[u8]) -> Result<Vec<u8>, Error> {
    let m = openmls::framing::MlsMessageIn::tls_deserialize_exact(message)
        .map_err(openmls("decoding a message"))?;
    Ok(match m.extract() {
        openmls::framing::MlsMessageBodyIn::PrivateMessage(p) => p.aad().to_vec(),
        _ => Vec::new(),
    })
}

fn wire(message: &MlsMessageOut) -> Result<Vec<u8>, Error> {
    message
        .tls_serialize_detached()
        .map_err(openmls("serializing a message"))
}

/// The binding extension of a group's context, when present and well-formed.
fn binding_of(mls: &MlsGroup) -> Option<GroupBinding> {
    mls.extensions()
        .unknown(GROUP_BINDING_EXTENSION_TYPE)
        .and_then(|e| GroupBinding::from_bytes(&e.0))
}

/// A leaf never changes account: `keep` is the leaf's index and current account.
fn check_same_account(keep: Option<(u32, Address)>, account: Address) -> Result<(), Error> {
    match keep {
        Some((leaf, from)) if from != account => Err(Error::AccountChange {
            leaf,
            from,
            to: account,
        }),
        _ => Ok(()),
    }
}

/// The epoch authenticator of the epoch a staged commit starts.
fn pending_authenticator(staged: &StagedCommit) -> Result<Vec<u8>, Error> {
    staged
        .epoch_authenticator()
        .map(|a| a.as_slice().to_vec())
        .ok_or(Error::Mls {
            what: "committing",
            reason: "the staged commit has no epoch authenticator (the member is removed)".into(),
        })
}

fn address_of(credential: &Credential) -> Result<Address, Error> {
    Ok(EthereumCredential::from_openmls(credential)?.address())
}

/// Polls a future once: credential checks without ERC-1271 never wait.
fn poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Checks credentials as externally owned accounts (EIP-191), on every core for long lists.
/// `None`: the check would have to wait (cannot happen without ERC-1271).
fn verify_eoa_parallel(
    leaves: &[((Credential, Vec<u8>), BindingPolicy)],
) -> Vec<Option<Result<Address, CredentialError>>> {
    eth_mls_crypto::parallel_map(leaves, 16, |((credential, key), policy)| {
        poll_once(verify_credential(credential, key, policy, None))
    })
}

/// The policy a leaf is checked under: the group's chain and domain, the window's time.
fn leaf_policy(config: &GroupConfig, credential: &Credential, window: Window) -> BindingPolicy {
    match window {
        Window::At(at) => config.policy_at(at),
        Window::WhenIssued => {
            let at = EthereumCredential::from_openmls(credential)
                .map(|c| {
                    let m = c.message();
                    let issued = m.issued_at().unix_seconds();
                    m.not_before()
                        .map_or(issued, |nb| nb.unix_seconds().max(issued))
                })
                .unwrap_or(0);
            config.policy_at(at)
        }
    }
}

/// Verifies leaves entering or changing: (credential, signature key), under `config`'s
/// chain and domain with windows as `window` says. Externally owned accounts are checked in
/// parallel; a signature that is not the account's own goes to `checks.erc1271` (contract
/// accounts).
async fn verify_leaves(
    leaves: Vec<(Credential, Vec<u8>)>,
    config: &GroupConfig,
    window: Window,
    checks: &Checks<'_>,
) -> Result<Vec<Address>, Error> {
    let leaves: Vec<_> = leaves
        .into_iter()
        .map(|leaf| {
            let policy = leaf_policy(config, &leaf.0, window);
            (leaf, policy)
        })
        .collect();
    let quick = verify_eoa_parallel(&leaves);
    let mut out = Vec::with_capacity(leaves.len());
    for (((credential, key), policy), result) in leaves.iter().zip(quick) {
        let address = match (result, checks.erc1271) {
            (Some(Ok(address)), _) => address,
            (Some(Err(CredentialError::Verification(_))) | None, Some(erc1271)) => {
                verify_credential(credential, key, policy, Some(erc1271))
                    .await
                    .map_err(credential_error)?
            }
            (Some(Err(e)), _) => return Err(credential_error(e)),
            (None, None) => verify_credential(credential, key, policy, None)
                .await
                .map_err(credential_error)?,
        };
        out.push(address);
    }
    Ok(out)
}

/// A failed credential check as a group error: an RPC failure is no verdict (decision 12).
fn credential_error(e: CredentialError) -> Error {
    match e {
        CredentialError::Verification(eth_mls_siwe::VerificationError::Rpc(rpc)) => {
            Error::CheckUnavailable(rpc.to_string())
        }
        other => Error::Credential(other),
    }
}

/// What a leaf's credential check needs: its credential and signature key.
fn entry(leaf: &LeafNode) -> (Credential, Vec<u8>) {
    (
        leaf.credential().clone(),
        leaf.signature_key().as_slice().to_vec(),
    )
}

/// The leaves of a ratchet tree, with their leaf indices.
fn tree_leaves(tree: &RatchetTreeIn) -> Result<Vec<(u32, LeafNode)>, Error> {
    // The serde form of RatchetTreeIn is its node vector, with the same shape as verified
    // nodes (openmls exposes no positional accessor).
    let nodes: Vec<Option<Node>> = rmp_serde::to_vec(tree)
        .ok()
        .and_then(|bytes| rmp_serde::from_slice(&bytes).ok())
        .ok_or_else(|| Error::Malformed("ratchet tree".into()))?;
    Ok(nodes
        .into_iter()
        .enumerate()
        .filter_map(|(i, node)| match node {
            Some(Node::LeafNode(leaf)) if i % 2 == 0 => Some(((i / 2) as u32, *leaf)),
            _ => None,
        })
        .collect())
}

/// The bytes a leaf's signature covers: `SignContent("MLS 1.0 LeafNodeTBS", LeafNodeTBS)`.
fn leaf_signed_content(leaf: &LeafNode, group_id: &GroupId, index: u32) -> Option<Vec<u8>> {
    use tls_codec::Size as _;
    let whole = leaf.tls_serialize_detached().ok()?;
    let payload_len = whole
        .len()
        .checked_sub(leaf.signature().tls_serialized_len())?;
    let mut tbs = whole[..payload_len].to_vec();
    if !matches!(leaf.leaf_node_source(), LeafNodeSource::KeyPackage(_)) {
        tbs.extend(group_id.tls_serialize_detached().ok()?);
        tbs.extend(index.to_be_bytes());
    }
    let mut content = VLBytes::new(b"MLS 1.0 LeafNodeTBS".to_vec())
        .tls_serialize_detached()
        .ok()?;
    content.extend(VLBytes::new(tbs).tls_serialize_detached().ok()?);
    Some(content)
}

/// The `authenticated_data` prefix that marks an eth-mls generation.
const GENERATION_AAD_TAG: &[u8; 4] = b"EMG1";

/// The `authenticated_data` of an application message of `generation`.
fn generation_aad(generation: u32) -> Vec<u8> {
    let mut aad = GENERATION_AAD_TAG.to_vec();
    aad.extend_from_slice(&generation.to_be_bytes());
    aad
}

/// The generation an `authenticated_data` names, if it is eth-mls's.
fn aad_generation(aad: &[u8]) -> Option<u32> {
    let rest = aad.strip_prefix(GENERATION_AAD_TAG)?;
    Some(u32::from_be_bytes(rest.try_into().ok()?))
}

impl Group {
    /// Creates a group with the store's identity as its only member: suite 0x0004,
    /// capabilities from the provider plus the Ethereum credential type, and the ratchet
    /// tree carried in Welcomes.
    pub fn create<B: Backend>(
        store: &mut Store<B>,
        group_id: &[u8],
        config: GroupConfig,
        extensions: Extensions<openmls::prelude::GroupContext>,
    ) -> Result<Self, Error> {
        Self::create_with_suite(store, group_id, config, extensions, SUITE)
    }

    /// [`Group::create`] with another suite the provider supports (0x0001, for comparison).
    pub fn create_with_suite<B: Backend>(
        store: &mut Store<B>,
        group_id: &[u8],
        config: GroupConfig,
        extensions: Extensions<openmls::prelude::GroupContext>,
        suite: Ciphersuite,
    ) -> Result<Self, Error> {
        let id = GroupId::from_slice(group_id);
        if tables::get_group(store.conn(), &id)?.is_some() {
            return Err(Error::GroupExists);
        }
        store.begin()?;
        let result = Self::create_inner(store, id, config, extensions, suite);
        match result {
            Ok(group) => store.commit().map(|()| group),
            Err(e) => {
                store.rollback();
                Err(e)
            }
        }
    }

    fn create_inner<B: Backend>(
        store: &Store<B>,
        id: GroupId,
        config: GroupConfig,
        mut extensions: Extensions<openmls::prelude::GroupContext>,
        suite: Ciphersuite,
    ) -> Result<Self, Error> {
        let provider = store.provider();
        if let Some(binding) = config.binding {
            if binding.chain_id != config.chain_id {
                return Err(Error::WrongBinding {
                    expected: Some(binding),
                    found: None,
                });
            }
            extensions
                .add_or_replace(binding.to_extension())
                .map_err(openmls("adding the group binding"))?;
            if extensions.required_capabilities().is_none() {
                extensions
                    .add(Extension::RequiredCapabilities(
                        RequiredCapabilitiesExtension::new(
                            &[GroupBinding::extension_type()],
                            &[],
                            &[],
                        ),
                    ))
                    .map_err(openmls("requiring the group binding"))?;
            }
        }
        let create = MlsGroupCreateConfig::builder()
            .ciphersuite(suite)
            .wire_format_policy(config.wire_format())
            .padding_size(config.padding_block)
            .sender_ratchet_configuration(config.ratchet())
            .max_past_epochs(config.max_past_epochs)
            .use_ratchet_tree_extension(true)
            .capabilities(capabilities(
                &provider,
                &[GroupBinding::extension_type()],
                &[credential_type()],
            ))
            .with_group_context_extensions(extensions)
            .build();
        let mls = MlsGroup::new_with_group_id(
            &provider,
            store.identity().signer(),
            &create,
            id.clone(),
            store.identity().credential_with_key(),
        )
        .map_err(openmls("creating the group"))?;
        tables::put_group(store.conn(), &id, &config_json(&config)?)?;
        Ok(Self {
            mls,
            config,
            incoming: None,
            dirty: false,
            addresses: Default::default(),
        })
    }

    /// Loads a group of the store (after a restart), with its pending commits.
    pub fn load<B: Backend>(store: &Store<B>, group_id: &[u8]) -> Result<Self, Error> {
        let id = GroupId::from_slice(group_id);
        let config = tables::get_group(store.conn(), &id)?.ok_or(Error::UnknownGroup)?;
        let config: GroupConfig = serde_json::from_str(&config)
            .map_err(|e| Error::Corrupt(format!("group config: {e}")))?;
        let mls = MlsGroup::load(store.provider().storage_provider(), &id)
            .map_err(openmls("loading the group"))?
            .ok_or(Error::UnknownGroup)?;
        let incoming = match tables::get_incoming(store.conn(), &id)? {
            Some((stored, committer)) => {
                let staged = match stored {
                    tables::StoredStaged::Binary(bytes) => {
                        <crate::store::BinaryCodec as openmls_sqlite_storage::Codec>::from_slice(
                            &bytes,
                        )
                        .map_err(|e| Error::Corrupt(format!("staged commit: {e}")))?
                    }
                    tables::StoredStaged::Json(json) => serde_json::from_str(&json)
                        .map_err(|e| Error::Corrupt(format!("staged commit: {e}")))?,
                };
                if committer.len() != 20 {
                    return Err(Error::Corrupt("committer address".into()));
                }
                Some((staged, Address::from_slice(&committer)))
            }
            None => None,
        };
        Ok(Self {
            mls,
            config,
            incoming,
            dirty: false,
            addresses: Default::default(),
        })
    }

    fn reload<B: Backend>(&mut self, store: &Store<B>) -> Result<(), Error> {
        *self = Self::load(store, self.mls.group_id().as_slice())?;
        Ok(())
    }

    /// Starts an operation: reloads after an interrupted one, then opens a transaction.
    fn begin<B: Backend>(&mut self, store: &Store<B>) -> Result<(), Error> {
        store.begin()?;
        if self.dirty
            && let Err(e) = self.reload(store)
        {
            store.rollback();
            return Err(e);
        }
        self.dirty = true;
        Ok(())
    }

    /// Ends an operation: commits on success, rolls back and reloads on failure.
    fn finish<B: Backend, T>(
        &mut self,
        store: &Store<B>,
        result: Result<T, Error>,
        op: Op,
    ) -> Result<T, Error> {
        let result = result.and_then(|value| {
            crate::step(op.before_commit());
            store.commit().map(|()| value)
        });
        match result {
            Ok(value) => {
                self.dirty = false;
                crate::step(op.after_commit());
                Ok(value)
            }
            Err(e) => {
                store.rollback();
                self.reload(store)?;
                Err(e)
            }
        }
    }

    /// Runs a synchronous operation in one transaction.
    fn op<B: Backend, T>(
        &mut self,
        store: &mut Store<B>,
        op: Op,
        f: impl FnOnce(&mut Self, &Store<B>, &StoreProvider<'_, B>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.begin(store)?;
        let result = {
            let provider = store.provider();
            f(self, store, &provider)
        };
        self.finish(store, result, op)
    }

    /// Creates a commit with `f` in one transaction and records it as pending.
    fn commit_with<B: Backend, E: std::fmt::Debug>(
        &mut self,
        store: &mut Store<B>,
        what: &'static str,
        f: impl FnOnce(
            &mut MlsGroup,
            &StoreProvider<'_, B>,
            &SignatureKeyPair<B>,
        ) -> Result<(MlsMessageOut, Option<MlsMessageOut>), E>,
    ) -> Result<OutgoingCommit, Error> {
        self.check_no_commit()?;
        self.op(store, Op::Commit, |group, store, provider| {
            let (commit, welcome) =
                f(&mut group.mls, provider, store.identity().signer()).map_err(openmls(what))?;
            group.record_outgoing(store, &commit, welcome.as_ref())
        })
    }

    /// Creates a proposal with `f` in one transaction, in the outbox; returns its entry and
    /// its reference.
    fn propose_with<B: Backend, E: std::fmt::Debug>(
        &mut self,
        store: &mut Store<B>,
        what: &'static str,
        f: impl FnOnce(
            &mut MlsGroup,
            &StoreProvider<'_, B>,
            &SignatureKeyPair<B>,
        )
            -> Result<(MlsMessageOut, openmls::ciphersuite::hash_ref::ProposalRef), E>,
    ) -> Result<(OutboxEntry, Vec<u8>), Error> {
        self.check_no_commit()?;
        self.op(store, Op::Other, |group, store, provider| {
            let (message, reference) =
                f(&mut group.mls, provider, store.identity().signer()).map_err(openmls(what))?;
            let entry = group.to_outbox(store, OutboxKind::Proposal, wire(&message)?)?;
            Ok((entry, reference.as_slice().to_vec()))
        })
    }

    /// Joins from a Welcome (an `MlsMessage`) whose ratchet tree is in its extension. Every
    /// leaf of the tree must carry a valid Ethereum credential for `config`'s chain and
    /// domain; on any failure nothing is stored (the key package stays usable).
    pub async fn join<B: Backend>(
        store: &mut Store<B>,
        welcome: &[u8],
        config: GroupConfig,
        checks: &Checks<'_>,
    ) -> Result<Self, Error> {
        let message = MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(|e| Error::Malformed(format!("Welcome: {e}")))?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(Error::Malformed("not a Welcome".into()));
        };
        store.begin()?;
        let result = Self::join_inner(store, welcome, config, checks).await;
        match result {
            Ok(group) => {
                crate::step(Op::Join.before_commit());
                if let Err(e) = store.commit() {
                    store.rollback();
                    return Err(e);
                }
                crate::step(Op::Join.after_commit());
                Ok(group)
            }
            Err(e) => {
                store.rollback();
                Err(e)
            }
        }
    }

    /// Inside the join transaction: decrypt the Welcome, check every leaf's credential and
    /// signature (in parallel, before openmls's own sequential tree validation, which then
    /// finds the signatures verified), build the group.
    async fn join_inner<B: Backend>(
        store: &mut Store<B>,
        welcome: openmls::prelude::Welcome,
        config: GroupConfig,
        checks: &Checks<'_>,
    ) -> Result<Self, Error> {
        let processed = {
            let provider = store.provider();
            ProcessedWelcome::new_from_welcome(&provider, &config.join_config(), welcome)
                .map_err(openmls("processing the Welcome"))?
        };
        let info = processed.unverified_group_info();
        let id = info.group_id().clone();
        if tables::get_group(store.conn(), &id)?.is_some() {
            return Err(Error::GroupExists);
        }
        let tree = info
            .extensions()
            .ratchet_tree()
            .ok_or_else(|| Error::Malformed("the Welcome carries no ratchet tree".into()))?
            .ratchet_tree()
            .clone();
        let leaves = tree_leaves(&tree)?;
        let contents: Vec<Option<Vec<u8>>> = leaves
            .iter()
            .map(|(index, leaf)| leaf_signed_content(leaf, &id, *index))
            .collect();
        let signatures: Vec<Option<VLBytes>> = leaves
            .iter()
            .map(|(_, leaf)| {
                let bytes = leaf.signature().tls_serialize_detached().ok()?;
                VLBytes::tls_deserialize_exact(bytes).ok()
            })
            .collect();
        let items: Vec<SignedMessage<'_>> = leaves
            .iter()
            .zip(contents.iter().zip(&signatures))
            .filter_map(|((_, leaf), (content, signature))| {
                Some(SignedMessage {
                    scheme: info.ciphersuite().signature_algorithm(),
                    public_key: leaf.signature_key().as_slice(),
                    message: content.as_deref()?,
                    signature: signature.as_ref()?.as_slice(),
                })
            })
            .collect();
        let verified = Arc::new(VerifiedSignatures::new());
        verified.verify_all::<B>(&items);
        drop(items);
        let checked: Vec<(Credential, Vec<u8>)> =
            leaves.iter().map(|(_, leaf)| entry(leaf)).collect();
        verify_leaves(checked.clone(), &config, Window::WhenIssued, checks).await?;
        let mls = {
            let provider = store.provider().with_verified_signatures(verified);
            // Leaf lifetimes are not judged by the local clock (decision 12): the credential
            // windows above are, at the reference time or at each leaf's issuance.
            let staged = openmls::group::JoinBuilder::new(&provider, processed)
                .skip_lifetime_validation()
                .build()
                .map_err(openmls("validating the Welcome"))?;
            // The tree openmls validated is the one whose credentials were checked.
            let members: Vec<(Credential, Vec<u8>)> = staged
                .members()
                .map(|m| (m.credential, m.signature_key))
                .collect();
            if members != checked {
                return Err(Error::Malformed("the ratchet tree changed".into()));
            }
            let mls = staged
                .into_group(&provider)
                .map_err(openmls("joining the group"))?;
            let found = binding_of(&mls);
            if found != config.binding {
                return Err(Error::WrongBinding {
                    expected: config.binding,
                    found,
                });
            }
            mls
        };
        tables::put_group(store.conn(), &id, &config_json(&config)?)?;
        store.forget_used_key_packages()?;
        Ok(Self {
            mls,
            config,
            incoming: None,
            dirty: false,
            addresses: Default::default(),
        })
    }

    /// The group id.
    pub fn id(&self) -> &[u8] {
        self.mls.group_id().as_slice()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.mls.epoch().as_u64()
    }

    /// The group's policy.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The cipher suite.
    pub fn ciphersuite(&self) -> Ciphersuite {
        self.mls.ciphersuite()
    }

    /// Whether the local member is still in the group (false after its removal merged).
    pub fn is_active(&self) -> bool {
        self.mls.is_active()
    }

    /// The current members' accounts, by leaf (an account with several devices appears once
    /// per device).
    pub fn members(&self) -> Vec<Address> {
        self.mls
            .members()
            .filter_map(|m| address_of(&m.credential).ok())
            .collect()
    }

    /// The local member's leaf index.
    pub fn own_leaf(&self) -> u32 {
        self.mls.own_leaf_index().u32()
    }

    /// The epoch authenticator (RFC 9420 §8.7): equal for all members of an epoch.
    pub fn epoch_authenticator(&self) -> Vec<u8> {
        self.mls.epoch_authenticator().as_slice().to_vec()
    }

    /// An exporter secret (RFC 9420 §8.5) of the current epoch.
    pub fn export_secret<B: Backend>(
        &self,
        store: &Store<B>,
        label: &str,
        context: &[u8],
        length: usize,
    ) -> Result<Vec<u8>, Error> {
        self.mls
            .export_secret(store.provider().crypto_provider(), label, context, length)
            .map_err(openmls("exporting a secret"))
    }

    /// Deletes the group and its keys from the store (e.g. after being removed), with its
    /// unpublished outbox entries; its inbox entries stay until acknowledged.
    pub fn delete<B: Backend>(mut self, store: &mut Store<B>) -> Result<(), Error> {
        self.op(store, Op::Other, |group, store, provider| {
            group
                .mls
                .delete(provider.storage_provider())
                .map_err(openmls("deleting the group"))?;
            tables::delete_group(store.conn(), group.mls.group_id())
        })
    }

    /// The group's binding to its contract, from its GroupContext (decision 13).
    pub fn binding(&self) -> Option<GroupBinding> {
        binding_of(&self.mls)
    }

    /// The members whose credential has expired at `at` (Unix seconds; a client passes the
    /// latest block's timestamp), with their leaf index: due for removal by an admin
    /// (decision 12). A leaf whose credential cannot be read is listed too.
    pub fn due_for_removal(&self, at: i64) -> Vec<(u32, Address)> {
        self.mls
            .members()
            .filter_map(|m| {
                let leaf = m.index.u32();
                match EthereumCredential::from_openmls(&m.credential) {
                    Ok(c) => c
                        .message()
                        .expiration_time()
                        .filter(|exp| exp.unix_seconds() <= at)
                        .map(|_| (leaf, c.address())),
                    Err(_) => Some((leaf, Address::ZERO)),
                }
            })
            .collect()
    }

    /// The openmls group (read-only), for what this API does not cover.
    pub fn mls(&self) -> &MlsGroup {
        &self.mls
    }

    fn leaves_of(&self, account: Address) -> Vec<LeafNodeIndex> {
        self.mls
            .members()
            .filter(|m| address_of(&m.credential).ok() == Some(account))
            .map(|m| m.index)
            .collect()
    }

    fn member_address(&self, leaf: LeafNodeIndex) -> Result<Address, Error> {
        let credential = self.mls.member(leaf).ok_or(Error::UnknownSender)?;
        // A poisoned cache is still a map of credentials to the addresses they name.
        let mut cache = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, address)) = cache.get(&leaf.u32())
            && known == credential
        {
            return Ok(*address);
        }
        let address = address_of(credential)?;
        cache.insert(leaf.u32(), (credential.clone(), address));
        Ok(address)
    }

    /// The leaf and account of a member's proposal (`None` for other senders).
    fn proposer(&self, proposal: &QueuedProposal) -> Result<Option<(u32, Address)>, Error> {
        match proposal.sender() {
            Sender::Member(leaf) => Ok(Some((leaf.u32(), self.member_address(*leaf)?))),
            _ => Ok(None),
        }
    }

    fn sender_address(&self, sender: &Sender) -> Result<(Address, LeafNodeIndex), Error> {
        match sender {
            Sender::Member(leaf) => Ok((self.member_address(*leaf)?, *leaf)),
            _ => Err(Error::UnknownSender),
        }
    }

    fn summarize(&self, staged: &StagedCommit, committer: Address) -> Result<CommitSummary, Error> {
        let mut added = Vec::new();
        let mut added_key_packages = Vec::new();
        let mut removed = Vec::new();
        let mut updated = BTreeSet::new();
        for add in staged.add_proposals() {
            let key_package = add.add_proposal().key_package();
            added.push(address_of(key_package.leaf_node().credential())?);
            let bytes = key_package
                .tls_serialize_detached()
                .map_err(openmls("encoding an added key package"))?;
            added_key_packages.push(alloy_primitives::keccak256(&bytes).0);
        }
        for remove in staged.remove_proposals() {
            removed.push(self.member_address(remove.remove_proposal().removed())?);
        }
        for update in staged.update_proposals() {
            if let Sender::Member(leaf) = update.sender() {
                updated.insert(self.member_address(*leaf)?);
            }
        }
        if staged.update_path_leaf_node().is_some() {
            updated.insert(committer);
        }
        let other_proposals = staged
            .queued_proposals()
            .filter(|q| {
                !matches!(
                    q.proposal(),
                    Proposal::Add(_) | Proposal::Remove(_) | Proposal::Update(_)
                )
            })
            .map(|q| u16::from(q.proposal().proposal_type()))
            .collect();
        Ok(CommitSummary {
            committer,
            added,
            added_key_packages,
            removed,
            updated: updated.into_iter().collect(),
            other_proposals,
            new_epoch: staged.epoch().as_u64(),
            self_removed: staged.self_removed(),
        })
    }

    fn own_address<B: Backend>(store: &Store<B>) -> Address {
        store.identity().address()
    }

    /// Records a commit this member just staged (openmls keeps the staged state), with its
    /// outbox entry.
    fn record_outgoing<B: Backend>(
        &self,
        store: &Store<B>,
        commit: &MlsMessageOut,
        welcome: Option<&MlsMessageOut>,
    ) -> Result<OutgoingCommit, Error> {
        let staged = self.mls.pending_commit().ok_or(Error::Mls {
            what: "committing",
            reason: "openmls staged no commit".into(),
        })?;
        let summary = self.summarize(staged, Self::own_address(store))?;
        let epoch_authenticator = pending_authenticator(staged)?;
        let commit = wire(commit)?;
        let welcome = welcome.map(wire).transpose()?;
        let entry = self.to_outbox(store, OutboxKind::Commit, commit.clone())?;
        tables::put_outgoing(
            store.conn(),
            self.mls.group_id(),
            &commit,
            welcome.as_deref(),
            entry.seq,
        )?;
        Ok(OutgoingCommit {
            commit,
            welcome,
            summary,
            outbox: entry.seq,
            epoch_authenticator,
        })
    }

    /// Stores bytes to publish, of the current epoch (inside the operation's transaction).
    fn to_outbox<B: Backend>(
        &self,
        store: &Store<B>,
        kind: OutboxKind,
        bytes: Vec<u8>,
    ) -> Result<OutboxEntry, Error> {
        journal::put_outbox(
            store.conn(),
            self.mls.group_id(),
            kind,
            self.epoch(),
            None,
            bytes,
        )
    }

    fn check_no_commit(&self) -> Result<(), Error> {
        if self.incoming.is_some() {
            return Err(Error::StagedCommitPending);
        }
        if self.mls.pending_commit().is_some() {
            return Err(Error::OwnCommitPending);
        }
        Ok(())
    }

    /// Adds members (by value, in one commit with an update path) from validated key
    /// packages. Their credentials are checked again against this group's policy. Returns
    /// the commit and the Welcome; merge with [`Group::merge_pending_commit`] once the group
    /// accepted the commit.
    pub async fn add_members<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        key_packages: &[ValidatedKeyPackage],
        checks: &Checks<'_>,
    ) -> Result<OutgoingCommit, Error> {
        self.add_members_with_aad(store, key_packages, checks, Vec::new())
            .await
    }

    /// [`Group::add_members`], the commit carrying `aad` as its authenticated data (sent in
    /// the clear, authenticated by the commit; every member can read it with
    /// [`authenticated_data`]): e.g. the invitees' signed consents.
    pub async fn add_members_with_aad<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        key_packages: &[ValidatedKeyPackage],
        checks: &Checks<'_>,
        aad: Vec<u8>,
    ) -> Result<OutgoingCommit, Error> {
        self.check_no_commit()?;
        if key_packages.is_empty() {
            return Err(Error::EmptyInput("key packages"));
        }
        let leaves = key_packages
            .iter()
            .map(|kp| {
                let leaf = kp.key_package().leaf_node();
                entry(leaf)
            })
            .collect();
        verify_leaves(leaves, &self.config, Window::At(checks.at), checks).await?;
        let kps: Vec<_> = key_packages
            .iter()
            .map(|kp| kp.key_package().clone())
            .collect();
        self.commit_with(store, "adding members", |mls, provider, signer| {
            // With an update path, as openmls's `add_members` (post-compromise security).
            build_commit(mls, provider, signer, aad, &[], |b| {
                b.propose_adds(kps).force_self_update(true)
            })
        })
    }

    /// Re-adds a member that lost the group state (a fork): one commit, by value, that removes
    /// every leaf of `account` and adds `key_package` (a fresh leaf of the same account), so
    /// the other members need nothing but the commit. Returns the commit and the Welcome.
    pub async fn swap_member<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        account: Address,
        key_package: &ValidatedKeyPackage,
        checks: &Checks<'_>,
    ) -> Result<OutgoingCommit, Error> {
        self.check_no_commit()?;
        if key_package.account() != account {
            return Err(Error::Malformed(format!(
                "the key package is {}'s, not {account}'s",
                key_package.account()
            )));
        }
        let leaves = self.leaves_of(account);
        if leaves.is_empty() {
            return Err(Error::NotAMember(account));
        }
        self.verify_key_package(key_package, checks).await?;
        // Every leaf of the account goes (a second device of the same account would be one),
        // the new leaf comes, with an update path.
        let kp = key_package.key_package().clone();
        self.commit_with(store, "re-adding a member", move |mls, provider, signer| {
            build_commit(mls, provider, signer, Vec::new(), &[], |b| {
                b.propose_removals(leaves).propose_adds([kp])
            })
        })
    }

    /// Removes every leaf of these accounts in one commit.
    pub fn remove_members<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        accounts: &[Address],
    ) -> Result<OutgoingCommit, Error> {
        self.check_no_commit()?;
        let mut leaves = Vec::new();
        for account in accounts {
            let found = self.leaves_of(*account);
            if found.is_empty() {
                return Err(Error::NotAMember(*account));
            }
            leaves.extend(found);
        }
        if leaves.is_empty() {
            return Err(Error::EmptyInput("accounts"));
        }
        self.commit_with(store, "removing members", |mls, provider, signer| {
            build_commit(mls, provider, signer, Vec::new(), &[], |b| {
                b.propose_removals(leaves)
            })
        })
    }

    /// Commits a fresh leaf and path (post-compromise security), and nothing else: stored
    /// proposals stay out (commit them by name with [`Group::commit_proposals`]). The leaf
    /// carries the store's current credential (a renewed one after
    /// [`Store::renew_credential`]).
    pub fn self_update<B: Backend>(
        &mut self,
        store: &mut Store<B>,
    ) -> Result<OutgoingCommit, Error> {
        // The store's current credential goes in: after a renewal, the members see the new
        // expiration time (same account, same key).
        let renewed = store.identity().credential().to_openmls();
        let current = self
            .mls
            .own_leaf_node()
            .map(|leaf| leaf.credential().clone());
        let params = if current.as_ref() == Some(&renewed) {
            LeafNodeParameters::default()
        } else {
            LeafNodeParameters::builder()
                .with_credential_with_key(store.identity().credential_with_key())
                .build()
        };
        self.commit_with(store, "self-update", move |mls, provider, signer| {
            build_commit(mls, provider, signer, Vec::new(), &[], |b| {
                b.leaf_node_parameters(params).force_self_update(true)
            })
        })
    }

    /// Commits exactly the stored proposals with these references (RFC 9420 §5.2; e.g. a
    /// member's Update, which only its sender can make and another member commits by
    /// reference), with an update path and `aad` as the commit's authenticated data; any
    /// other stored proposal stays out. [`Error::Mls`] when one of them is not stored.
    pub fn commit_proposals<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        references: &[Vec<u8>],
        aad: Vec<u8>,
    ) -> Result<OutgoingCommit, Error> {
        self.check_no_commit()?;
        if references.is_empty() {
            return Err(Error::EmptyInput("proposal references"));
        }
        let references = references.to_vec();
        self.commit_with(
            store,
            "committing proposals",
            move |mls, provider, signer| {
                build_commit(mls, provider, signer, aad, &references, |b| {
                    b.force_self_update(true)
                })
            },
        )
    }

    /// Drops a stored proposal (one that no commit of this member will name: a refused
    /// request's). Nothing happens when it is not stored.
    pub fn forget_proposal<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        reference: &[u8],
    ) -> Result<(), Error> {
        let Some(r) = self
            .mls
            .pending_proposals()
            .find(|q| q.proposal_reference_ref().as_slice() == reference)
            .map(|q| q.proposal_reference_ref().clone())
        else {
            return Ok(());
        };
        self.op(store, Op::Other, |group, store, _| {
            group
                .mls
                .remove_pending_proposal(store.provider().storage_provider(), &r)
                .map_err(openmls("forgetting a proposal"))
        })
    }

    /// The references of the proposals stored for a commit by reference.
    pub fn stored_proposals(&self) -> Vec<Vec<u8>> {
        self.mls
            .pending_proposals()
            .map(|q| q.proposal_reference_ref().as_slice().to_vec())
            .collect()
    }

    /// Commits the proposals received and sent in this epoch (by reference), with an update
    /// path.
    pub fn commit_pending_proposals<B: Backend>(
        &mut self,
        store: &mut Store<B>,
    ) -> Result<OutgoingCommit, Error> {
        self.commit_with(
            store,
            "committing pending proposals",
            |mls, provider, signer| {
                // Forces committing to the proposals received and sent (with a path).
                let all: Vec<Vec<u8>> = mls
                    .pending_proposals()
                    .map(|q| q.proposal_reference_ref().as_slice().to_vec())
                    .collect();
                build_commit(mls, provider, signer, Vec::new(), &all, |b| {
                    b.consume_proposal_store(true)
                })
            },
        )
    }

    /// Checks a new member's leaf against this group's policy at `checks.at`.
    async fn verify_key_package(
        &self,
        key_package: &ValidatedKeyPackage,
        checks: &Checks<'_>,
    ) -> Result<(), Error> {
        let leaf = key_package.key_package().leaf_node();
        verify_leaves(
            vec![entry(leaf)],
            &self.config,
            Window::At(checks.at),
            checks,
        )
        .await
        .map(|_| ())
    }

    /// Proposes adding a member (to be committed by reference). Returns the proposal's
    /// outbox entry and its reference.
    pub async fn propose_add<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        key_package: &ValidatedKeyPackage,
        checks: &Checks<'_>,
    ) -> Result<(OutboxEntry, Vec<u8>), Error> {
        self.check_no_commit()?;
        self.verify_key_package(key_package, checks).await?;
        self.propose_with(store, "proposing an add", |mls, provider, signer| {
            mls.propose_add_member(provider, signer, key_package.key_package())
        })
    }

    /// Proposes removing an account (its first leaf).
    pub fn propose_remove<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        account: Address,
    ) -> Result<(OutboxEntry, Vec<u8>), Error> {
        self.check_no_commit()?;
        let leaf = *self
            .leaves_of(account)
            .first()
            .ok_or(Error::NotAMember(account))?;
        self.propose_with(store, "proposing a removal", |mls, provider, signer| {
            mls.propose_remove_member(provider, signer, leaf)
        })
    }

    /// Proposes an update of the own leaf (fresh encryption key).
    pub fn propose_self_update<B: Backend>(
        &mut self,
        store: &mut Store<B>,
    ) -> Result<(OutboxEntry, Vec<u8>), Error> {
        self.propose_with(store, "proposing an update", |mls, provider, signer| {
            mls.propose_self_update(provider, signer, LeafNodeParameters::default())
        })
    }

    /// Leaves the group: a proposal to remove the own leaf, which another member commits.
    /// Returns its outbox entry.
    pub fn leave<B: Backend>(&mut self, store: &mut Store<B>) -> Result<OutboxEntry, Error> {
        self.check_no_commit()?;
        self.op(store, Op::Other, |group, store, provider| {
            let message = group
                .mls
                .leave_group(provider, store.identity().signer())
                .map_err(openmls("leaving"))?;
            group.to_outbox(store, OutboxKind::Proposal, wire(&message)?)
        })
    }

    /// The commit this member created and has not merged or discarded (also after a
    /// restart).
    pub fn pending_commit<B: Backend>(
        &self,
        store: &Store<B>,
    ) -> Result<Option<OutgoingCommit>, Error> {
        let Some(staged) = self.mls.pending_commit() else {
            return Ok(None);
        };
        let Some((commit, welcome, outbox)) =
            tables::get_outgoing(store.conn(), self.mls.group_id())?
        else {
            return Err(Error::Corrupt(
                "a pending commit without its message".into(),
            ));
        };
        Ok(Some(OutgoingCommit {
            commit,
            welcome,
            summary: self.summarize(staged, Self::own_address(store))?,
            outbox,
            epoch_authenticator: pending_authenticator(staged)?,
        }))
    }

    /// Enters the epoch of the own pending commit (once the group accepted it). Its
    /// Welcome, if any, enters the outbox in the same transaction: returned here.
    pub fn merge_pending_commit<B: Backend>(
        &mut self,
        store: &mut Store<B>,
    ) -> Result<Option<OutboxEntry>, Error> {
        if self.mls.pending_commit().is_none() {
            return Err(Error::NoPendingCommit);
        }
        self.op(store, Op::Merge, |group, store, provider| {
            let welcome = tables::get_outgoing(store.conn(), group.mls.group_id())?
                .and_then(|(_, welcome, _)| welcome);
            group
                .mls
                .merge_pending_commit(provider)
                .map_err(openmls("merging the pending commit"))?;
            group.after_merge(store)?;
            welcome
                .map(|bytes| group.to_outbox(store, OutboxKind::Welcome, bytes))
                .transpose()
        })
    }

    /// Drops the own pending commit (e.g. another member's commit won the epoch), with its
    /// outbox entry if it was not published.
    pub fn discard_pending_commit<B: Backend>(
        &mut self,
        store: &mut Store<B>,
    ) -> Result<(), Error> {
        if self.mls.pending_commit().is_none() {
            return Err(Error::NoPendingCommit);
        }
        self.op(store, Op::Other, |group, store, provider| {
            if let Some((_, _, seq)) = tables::get_outgoing(store.conn(), group.mls.group_id())? {
                journal::drop_unpublished(store.conn(), seq)?;
            }
            group
                .mls
                .clear_pending_commit(provider.storage_provider())
                .map_err(openmls("discarding the pending commit"))?;
            tables::delete_commits(store.conn(), group.mls.group_id())
        })
    }

    /// The received commit staged by [`Group::process`], waiting for a decision (also
    /// after a restart).
    pub fn staged_commit(&self) -> Result<Option<CommitSummary>, Error> {
        match &self.incoming {
            Some((staged, committer)) => Ok(Some(self.summarize(staged, *committer)?)),
            None => Ok(None),
        }
    }

    /// Enters the epoch of the received staged commit.
    pub fn merge_staged_commit<B: Backend>(
        &mut self,
        store: &mut Store<B>,
    ) -> Result<CommitSummary, Error> {
        let Some((staged, committer)) = self.incoming.take() else {
            return Err(Error::NoStagedCommit);
        };
        let summary = self.summarize(&staged, committer);
        self.op(store, Op::Merge, |group, store, provider| {
            let summary = summary?;
            group
                .mls
                .merge_staged_commit(provider, staged)
                .map_err(openmls("merging the staged commit"))?;
            group.after_merge(store)?;
            Ok(summary)
        })
    }

    /// Drops the received staged commit: the group stays in its epoch.
    pub fn discard_staged_commit<B: Backend>(&mut self, store: &mut Store<B>) -> Result<(), Error> {
        if self.incoming.is_none() {
            return Err(Error::NoStagedCommit);
        }
        self.op(store, Op::Other, |group, store, _| {
            group.incoming = None;
            tables::delete_commits(store.conn(), group.mls.group_id())
        })
    }

    /// Encrypts an application message (`PrivateMessage`, padded) for the group. The
    /// message and its generation's use are stored together: the returned outbox entry
    /// exists exactly when the generation is spent. An own pending commit does not block it
    /// (the message is of the current epoch, which members keep after merging the commit);
    /// a staged received commit does ([`Error::StagedCommitPending`]).
    pub fn send<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        data: &[u8],
    ) -> Result<OutboxEntry, Error> {
        if self.incoming.is_some() {
            return Err(Error::StagedCommitPending);
        }
        self.op(store, Op::Send, |group, store, provider| {
            let id = group.mls.group_id().clone();
            let epoch = group.epoch();
            let leaf = group.own_leaf();
            let generation = tables::get_generation(store.conn(), &id, epoch, leaf)?.unwrap_or(0);
            group.mls.set_aad(generation_aad(generation));
            let message = group
                .mls
                .create_message(provider, store.identity().signer(), data)
                .map_err(openmls("encrypting"))?;
            tables::put_generation(store.conn(), &id, epoch, leaf, generation + 1)?;
            journal::put_outbox(
                store.conn(),
                &id,
                OutboxKind::Application,
                epoch,
                Some(generation),
                wire(&message)?,
            )
        })
    }

    /// Processes a message from the group (an `MlsMessage`: `PrivateMessage`, or
    /// `PublicMessage` when the policy accepts them). Leaves entering or changing (Add and
    /// Update proposals, commits' proposals and update path) must carry credentials valid
    /// for the group; anything that fails leaves the group exactly as it was.
    ///
    /// What the message produced goes to the store's inbox in the same transaction as the
    /// ratchet step (and is returned). The same bytes again (while retention remembers
    /// them) are [`Processed::Duplicate`], with nothing changed.
    pub async fn process<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        message: &[u8],
        checks: &Checks<'_>,
    ) -> Result<Processed, Error> {
        use sha2::Digest as _;
        let hash: [u8; 32] = sha2::Sha256::digest(message).into();
        if journal::was_processed(store.conn(), self.mls.group_id(), &hash)? {
            return Ok(Processed::Duplicate);
        }
        if self.incoming.is_some() {
            return Err(Error::StagedCommitPending);
        }
        let message = MlsMessageIn::tls_deserialize_exact(message)
            .map_err(|e| Error::Malformed(format!("MlsMessage: {e}")))?;
        let protocol: ProtocolMessage = message
            .try_into_protocol_message()
            .map_err(|_| Error::Malformed("not a group message".into()))?;
        if protocol.group_id() != self.mls.group_id() {
            return Err(Error::WrongGroup);
        }
        self.begin(store)?;
        let result = self
            .process_inner(store, protocol, checks)
            .await
            .and_then(|events| {
                journal::record_processed(store.conn(), self.mls.group_id(), &hash, &events)?;
                Ok(Processed::New(events))
            });
        self.finish(store, result, Op::Process)
    }

    async fn process_inner<B: Backend>(
        &mut self,
        store: &mut Store<B>,
        protocol: ProtocolMessage,
        checks: &Checks<'_>,
    ) -> Result<Vec<Event>, Error> {
        let processed = {
            let provider = store.provider();
            self.mls
                .process_message(&provider, protocol)
                .map_err(|e| Error::Rejected(format!("{e:?}")))?
        };
        let epoch = processed.epoch().as_u64();
        let sender = processed.sender().clone();
        // The sender's credential in the message's own epoch (openmls keeps past epochs'
        // members): a message from an earlier epoch of a member removed since still names it.
        let sender_credential = processed.credential().clone();
        let generation = aad_generation(processed.aad());
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                let Sender::Member(leaf) = sender else {
                    return Err(Error::UnknownSender);
                };
                let address = address_of(&sender_credential)?;
                let data = app.into_bytes();
                let id = self.mls.group_id().clone();
                let mut events = Vec::new();
                if let Some(generation) = generation {
                    let expected =
                        tables::get_generation(store.conn(), &id, epoch, leaf.u32())?.unwrap_or(0);
                    if generation > expected {
                        events.push(Event::MissedMessages {
                            sender: address,
                            epoch,
                            missed: generation - expected,
                        });
                    }
                    if generation >= expected {
                        tables::put_generation(
                            store.conn(),
                            &id,
                            epoch,
                            leaf.u32(),
                            generation + 1,
                        )?;
                    }
                }
                events.push(Event::Application(ApplicationMessage {
                    sender: address,
                    sender_leaf: leaf.u32(),
                    data,
                    epoch,
                    generation,
                }));
                Ok(events)
            }
            ProcessedMessageContent::ProposalMessage(proposal) => {
                let (address, _) = self.sender_address(&sender)?;
                let kind = self.verify_proposal(&proposal, checks).await?;
                let reference = proposal.proposal_reference_ref().as_slice().to_vec();
                self.mls
                    .store_pending_proposal(store.provider().storage_provider(), *proposal)
                    .map_err(openmls("storing the proposal"))?;
                Ok(vec![Event::Proposal(ProposalSummary {
                    sender: address,
                    kind,
                    reference,
                })])
            }
            ProcessedMessageContent::ExternalJoinProposalMessage(_) => Err(Error::UnknownSender),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let (committer, committer_leaf) = self.sender_address(&sender)?;
                let committer_leaf = Some(committer_leaf.u32());
                // Each leaf entering or changing, with the account it must keep (a leaf never
                // changes account: decision 12).
                let mut leaves = Vec::new();
                let mut keep: Vec<Option<(u32, Address)>> = Vec::new();
                if let Some(leaf) = staged.update_path_leaf_node() {
                    leaves.push(entry(leaf));
                    keep.push(committer_leaf.map(|leaf| (leaf, committer)));
                }
                for proposal in staged.queued_proposals() {
                    match proposal.proposal() {
                        Proposal::Add(add) => {
                            let leaf = add.key_package().leaf_node();
                            leaves.push(entry(leaf));
                            keep.push(None);
                        }
                        Proposal::Update(update) => {
                            let leaf = update.leaf_node();
                            leaves.push(entry(leaf));
                            keep.push(self.proposer(proposal)?);
                        }
                        _ => {}
                    }
                }
                let accounts =
                    verify_leaves(leaves, &self.config, Window::At(checks.at), checks).await?;
                for (account, keep) in accounts.iter().zip(keep) {
                    check_same_account(keep, *account)?;
                }
                let summary = self.summarize(&staged, committer)?;
                // MessagePack: a third of the size of JSON (which wrote a secret tree's empty
                // slots as `null`s and every byte string as a list of numbers), and faster.
                let bytes =
                    <crate::store::BinaryCodec as openmls_sqlite_storage::Codec>::to_vec(&*staged)
                        .map_err(|e| Error::Corrupt(format!("staged commit: {e}")))?;
                tables::put_incoming(
                    store.conn(),
                    self.mls.group_id(),
                    &bytes,
                    committer.as_slice(),
                )?;
                self.incoming = Some((*staged, committer));
                Ok(vec![Event::StagedCommit(summary)])
            }
            ProcessedMessageContent::OwnPrivateMessage => Ok(vec![Event::OwnMessage]),
            #[allow(unreachable_patterns)]
            _ => Err(Error::Rejected("unsupported message content".into())),
        }
    }

    async fn verify_proposal(
        &self,
        proposal: &QueuedProposal,
        checks: &Checks<'_>,
    ) -> Result<ProposalKind, Error> {
        let window = Window::At(checks.at);
        Ok(match proposal.proposal() {
            Proposal::Add(add) => {
                let leaf = add.key_package().leaf_node();
                let account =
                    verify_leaves(vec![entry(leaf)], &self.config, window, checks).await?;
                ProposalKind::Add(account.first().copied().ok_or(Error::UnknownSender)?)
            }
            Proposal::Update(update) => {
                let leaf = update.leaf_node();
                let accounts =
                    verify_leaves(vec![entry(leaf)], &self.config, window, checks).await?;
                let account = accounts.first().copied().ok_or(Error::UnknownSender)?;
                check_same_account(self.proposer(proposal)?, account)?;
                ProposalKind::Update
            }
            Proposal::Remove(remove) => {
                ProposalKind::Remove(self.member_address(remove.removed())?)
            }
            other => ProposalKind::Other(u16::from(other.proposal_type())),
        })
    }

    fn after_merge<B: Backend>(&mut self, store: &Store<B>) -> Result<(), Error> {
        tables::delete_commits(store.conn(), self.mls.group_id())?;
        let oldest = self
            .epoch()
            .saturating_sub(self.config.max_past_epochs as u64);
        tables::prune_generations(store.conn(), self.mls.group_id(), oldest)?;
        // A removed member's group stays loadable (inactive) until the caller deletes it.
        Ok(())
    }
}

fn config_json(config: &GroupConfig) -> Result<String, Error> {
    serde_json::to_string(config).map_err(|e| Error::Corrupt(format!("group config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BindingRequest, Identity, LocalEthereumSigner};
    use eth_mls_crypto::DefaultBackend;

    fn store(n: u8) -> Store {
        let account = LocalEthereumSigner::from_bytes(&[n; 32]).unwrap();
        let request = BindingRequest {
            domain: "chat.example".into(),
            uri: "https://chat.example".into(),
            chain_id: 1,
            valid_for: None,
        };
        Store::in_memory(
            poll_once(Identity::create(&account, &request))
                .unwrap()
                .unwrap(),
        )
        .unwrap()
    }

    /// A fresh key package of account `n`, validated as `alice`'s group takes it.
    fn key_package(alice: &Store, config: &GroupConfig, n: u8) -> ValidatedKeyPackage {
        let bytes = store(n).generate_key_package(None).unwrap();
        poll_once(crate::validate_key_package_bytes(
            &bytes,
            alice.provider().crypto_provider(),
            SUITE,
            &config.policy(),
            None,
        ))
        .unwrap()
        .unwrap()
    }

    /// Signs with the key pair and counts the signatures made.
    struct Counting<'a>(&'a SignatureKeyPair, std::cell::Cell<usize>);

    impl openmls_traits::signatures::Signer for Counting<'_> {
        fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, openmls_traits::signatures::SignerError> {
            self.1.set(self.1.get() + 1);
            openmls_traits::signatures::Signer::sign(self.0, payload)
        }

        fn signature_scheme(&self) -> openmls::prelude::SignatureScheme {
            openmls_traits::signatures::Signer::signature_scheme(self.0)
        }
    }

    /// A commit signs what it sends and nothing more: the commit, the Welcome's GroupInfo and
    /// a new leaf, not the second GroupInfo openmls's own commit methods sign for export.
    #[test]
    fn commits_sign_no_group_info_for_export() {
        let config = GroupConfig::new(1, "chat.example");
        let mut alice = store(1);
        let mut group =
            Group::create(&mut alice, b"g", config.clone(), Default::default()).unwrap();
        let kp = |n: u8| key_package(&alice, &config, n).key_package().clone();
        let (bob, carol) = (kp(2), kp(3));
        let signer = Counting(alice.identity().signer(), Default::default());
        let provider = alice.provider();
        // An add with an update path: the new leaf, the commit and the Welcome's GroupInfo.
        let (_, welcome) = build_commit(&mut group.mls, &provider, &signer, Vec::new(), &[], |b| {
            b.propose_adds([bob]).force_self_update(true)
        })
        .unwrap();
        assert!(welcome.is_some());
        assert_eq!(signer.1.take(), 3);
        // A commit is pending: no second one.
        assert!(build_commit(&mut group.mls, &provider, &signer, Vec::new(), &[], |b| b).is_err());
        group.mls.merge_pending_commit(&provider).unwrap();
        // A self-update: the commit and the new leaf; no Welcome.
        let (_, welcome) = build_commit(&mut group.mls, &provider, &signer, Vec::new(), &[], |b| {
            b.leaf_node_parameters(LeafNodeParameters::default())
        })
        .unwrap();
        assert!(welcome.is_none());
        assert_eq!(signer.1.take(), 2);
        group.mls.merge_pending_commit(&provider).unwrap();
        // openmls's own add (with an update path too) signs one GroupInfo more, for export.
        group.mls.add_members(&provider, &signer, &[carol]).unwrap();
        assert_eq!(signer.1.take(), 4);
    }

    /// The signed content computed for every leaf (key-package, commit and update sources)
    /// is exactly what its signature covers.
    #[test]
    fn leaf_signed_contents_match_the_signatures() {
        let config = GroupConfig::new(1, "chat.example");
        let mut alice = store(1);
        let mut group =
            Group::create(&mut alice, b"g", config.clone(), Default::default()).unwrap();
        let kps: Vec<_> = (2..5).map(|n| key_package(&alice, &config, n)).collect();
        poll_once(group.add_members(
            &mut alice,
            &kps,
            &Checks::at(eth_mls_siwe::TimeStamp::now().unix_seconds()),
        ))
        .unwrap()
        .unwrap();
        group.merge_pending_commit(&mut alice).unwrap();
        group.self_update(&mut alice).unwrap();
        group.merge_pending_commit(&mut alice).unwrap();
        let tree: RatchetTreeIn = group.mls.export_ratchet_tree().into();
        let leaves = tree_leaves(&tree).unwrap();
        assert_eq!(leaves.len(), 4);
        assert!(matches!(
            leaves[0].1.leaf_node_source(),
            LeafNodeSource::Commit(_)
        ));
        assert!(matches!(
            leaves[1].1.leaf_node_source(),
            LeafNodeSource::KeyPackage(_)
        ));
        let id = group.mls.group_id().clone();
        let contents: Vec<Vec<u8>> = leaves
            .iter()
            .map(|(i, leaf)| leaf_signed_content(leaf, &id, *i).unwrap())
            .collect();
        let signatures: Vec<VLBytes> = leaves
            .iter()
            .map(|(_, l)| {
                VLBytes::tls_deserialize_exact(l.signature().tls_serialize_detached().unwrap())
                    .unwrap()
            })
            .collect();
        let items: Vec<SignedMessage<'_>> = leaves
            .iter()
            .zip(contents.iter().zip(&signatures))
            .map(|((_, leaf), (content, signature))| SignedMessage {
                scheme: SUITE.signature_algorithm(),
                public_key: leaf.signature_key().as_slice(),
                message: content,
                signature: signature.as_slice(),
            })
            .collect();
        let verified = VerifiedSignatures::new();
        assert_eq!(verified.verify_all::<DefaultBackend>(&items), vec![true; 4]);
        // And a wrong leaf index does not verify for a commit-sourced leaf.
        let wrong = leaf_signed_content(&leaves[0].1, &id, 1).unwrap();
        let item = SignedMessage {
            message: &wrong,
            ..items[0]
        };
        assert_eq!(verified.verify_all::<DefaultBackend>(&[item]), vec![false]);
    }
}

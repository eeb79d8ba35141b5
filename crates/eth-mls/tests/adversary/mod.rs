//! An adversarial peer of the 1:1 channel (security review 2026-12, issue 27): it publishes raw
//! channel frames on any account's inbox topic, claiming any sender and using any keys it
//! likes. Its tests are in `tests/client.rs` (one test binary for the client).

use eth_mls::wire::ClientMessage;
use eth_mls_chain::{Chain, Deployment};
use eth_mls_channel::{
    DefaultBackend as ChannelBackend, Device, OneTimePrekeyChoice, PrekeyBundle, Secret,
};
use eth_mls_siwe::Address;
use eth_mls_transport::{DeliveryService, MemoryNode, Topic};

/// Mallory: a network node and a chain reader, and channel devices that claim to be any
/// account (each with Mallory's own fresh keys).
pub struct Mallory {
    /// Mallory's node on the in-memory network.
    pub node: MemoryNode,
    /// A chain client (reads the victims' published bundles).
    pub chain: Chain,
    /// The deployment (the registry's address).
    pub deployment: Deployment,
}

/// Unix seconds now.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Mallory {
    /// A channel device that claims to be `claimed`: Mallory's own identity and signature
    /// keys, the victim's address.
    pub fn device_claiming(claimed: Address) -> Device<ChannelBackend> {
        let mut seed = [0u8; 57];
        getrandom::fill(&mut seed).unwrap();
        let seed = Secret::from_slice(&seed).unwrap();
        let mut d = Device::<ChannelBackend>::generate(claimed.into_array(), seed).unwrap();
        d.rotate_signed_prekey(now(), 86_400).unwrap();
        d
    }

    /// `victim`'s published, valid bundle.
    pub async fn bundle_of(&self, victim: Address) -> eth_mls_channel::VerifiedBundle {
        let published = self
            .chain
            .erc7627(self.deployment.erc7627)
            .channel_bundle(victim, self.deployment.block)
            .await
            .unwrap()
            .expect("the victim published a bundle");
        PrekeyBundle::validate::<ChannelBackend>(&published.bundle, now()).unwrap()
    }

    /// Opens a session from `device` to `victim` (one-time prekey as chosen) and sends
    /// `message` on it; returns the session id.
    pub async fn send_as(
        &self,
        device: &mut Device<ChannelBackend>,
        victim: Address,
        choice: OneTimePrekeyChoice,
        message: &ClientMessage,
    ) -> [u8; 32] {
        let bundle = self.bundle_of(victim).await;
        let session = device.initiate(&bundle, choice).unwrap();
        let bytes = device
            .encrypt(&session, &message.encode().unwrap())
            .unwrap();
        self.publish(victim, bytes).await;
        session
    }

    /// Publishes raw bytes on `victim`'s inbox topic.
    pub async fn publish(&self, victim: Address, bytes: Vec<u8>) {
        let topic = Topic::Inbox {
            chain_id: self.chain.chain_id(),
            account: victim.into_array(),
        };
        self.node.publish(&topic, bytes).await.unwrap();
    }
}

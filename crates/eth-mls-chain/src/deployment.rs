//! A deployment of the contracts on one chain: deploy, save, load, connect.

use std::path::Path;

use alloy::contract::CallBuilder;
use alloy::primitives::{Address, B256, Bytes, address, keccak256};
use alloy::providers::Provider;
use alloy::sol_types::SolConstructor;
use serde::{Deserialize, Serialize};

use crate::bindings::{ERC7627, MlsGroup, MlsGroupFactory};
use crate::error::Contract;
use crate::{Chain, Erc7627, Error, GroupFactory};

/// The standard CREATE2 deterministic-deployment proxy (Arachnid's), at this address on every
/// chain that has it (anvil predeploys it; most public chains have it): calldata
/// `salt ‖ initcode` deploys `initcode` at `keccak256(0xff ‖ proxy ‖ salt ‖
/// keccak256(initcode))[12..]`.
pub const CREATE2_DEPLOYER: Address = address!("4e59b44847b379578588920ca78fbf26c0b4956c");

/// The salt of eth-mls's deployments: `keccak256("eth-mls/deployment/v1")`.
pub fn deployment_salt() -> B256 {
    keccak256(b"eth-mls/deployment/v1")
}

/// The initcodes of the three contracts (creation code and constructor arguments), the
/// factory's naming the other two at their deterministic addresses.
fn initcodes() -> [(&'static str, Bytes, Contract); 3] {
    let salt = deployment_salt();
    let registry = CREATE2_DEPLOYER.create2_from_code(salt, ERC7627::BYTECODE.as_ref());
    let implementation = CREATE2_DEPLOYER.create2_from_code(salt, MlsGroup::BYTECODE.as_ref());
    let args = MlsGroupFactory::constructorCall {
        implementation_: implementation,
        registry_: registry,
    }
    .abi_encode();
    let mut factory = MlsGroupFactory::BYTECODE.to_vec();
    factory.extend_from_slice(&args);
    [
        ("ERC7627", ERC7627::BYTECODE.clone(), Contract::Erc7627),
        ("MlsGroup", MlsGroup::BYTECODE.clone(), Contract::Group),
        ("MlsGroupFactory", factory.into(), Contract::Factory),
    ]
}

/// Where the contracts are on a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The chain id.
    pub chain_id: u64,
    /// The ERC-7627 registry.
    pub erc7627: Address,
    /// The `MlsGroup` implementation behind every group clone.
    pub group_implementation: Address,
    /// The `MlsGroupFactory`.
    pub group_factory: Address,
    /// The block of the first deployment transaction (where event scans can start).
    pub block: u64,
}

impl Deployment {
    /// How many contracts [`deploy`](Self::deploy) deploys.
    pub const DEPLOY_STEPS: u64 = 3;

    /// Where the contracts are on every chain whose deployment went through the
    /// [`CREATE2_DEPLOYER`] (what [`deploy`](Self::deploy) does when the chain has it): the
    /// same three addresses everywhere. `block` is 0 here (where the contracts appeared is a
    /// property of each chain; [`Deployment::find`] reads it).
    pub fn deterministic(chain_id: u64) -> Deployment {
        let salt = deployment_salt();
        let [registry, implementation, factory] =
            initcodes().map(|(_, code, _)| CREATE2_DEPLOYER.create2_from_code(salt, code.as_ref()));
        Deployment {
            chain_id,
            erc7627: registry,
            group_implementation: implementation,
            group_factory: factory,
            block: 0,
        }
    }

    /// The [`deterministic`](Self::deterministic) deployment on `chain`, when all three
    /// contracts are there, with the block the registry appeared in (searched with
    /// `eth_getCode` at past blocks; 0 when the node cannot answer for old blocks).
    pub async fn find(chain: &Chain) -> Result<Option<Deployment>, Error> {
        let mut d = Self::deterministic(chain.chain_id());
        for address in [d.erc7627, d.group_implementation, d.group_factory] {
            if chain.provider().get_code_at(address).await?.is_empty() {
                return Ok(None);
            }
        }
        d.block = first_block_with_code(chain, d.erc7627).await;
        Ok(Some(d))
    }

    /// Deploys ERC7627, the MlsGroup implementation and the factory with `chain`'s signer:
    /// through the [`CREATE2_DEPLOYER`] when the chain has it (the same addresses on every
    /// chain; contracts already there are not deployed again), else with plain CREATE.
    pub async fn deploy(chain: &Chain) -> Result<Deployment, Error> {
        Self::deploy_with_progress(chain, |_, _| {}).await
    }

    /// [`deploy`](Self::deploy), calling `progress(done, next)` before each of the
    /// [`DEPLOY_STEPS`](Self::DEPLOY_STEPS) contracts (with how many are deployed and the name
    /// of the next) and `progress(3, "")` at the end: for progress bars.
    pub async fn deploy_with_progress(
        chain: &Chain,
        progress: impl FnMut(u64, &str),
    ) -> Result<Deployment, Error> {
        if chain.sender().is_none() {
            return Err(Error::NoSigner);
        }
        let block = chain.provider().get_block_number().await?;
        if !chain
            .provider()
            .get_code_at(CREATE2_DEPLOYER)
            .await?
            .is_empty()
        {
            return Self::deploy_create2(chain, block, progress).await;
        }
        Self::deploy_separate(chain, block, progress).await
    }

    /// Deploys a separate set of contracts with plain CREATE (new addresses each time, from the
    /// signer's nonce): a second deployment on a chain that has the deterministic one, for a
    /// test, a look-alike, or a chain without the CREATE2 deployer.
    pub async fn deploy_separate_set(chain: &Chain) -> Result<Deployment, Error> {
        if chain.sender().is_none() {
            return Err(Error::NoSigner);
        }
        let block = chain.provider().get_block_number().await?;
        Self::deploy_separate(chain, block, |_, _| {}).await
    }

    async fn deploy_separate(
        chain: &Chain,
        block: u64,
        mut progress: impl FnMut(u64, &str),
    ) -> Result<Deployment, Error> {
        progress(0, "ERC7627");
        let registry = Erc7627::deploy(chain).await?;
        progress(1, "MlsGroup");
        let implementation = chain
            .deploy(MlsGroup::deploy_builder(chain.provider()), Contract::Group)
            .await?;
        progress(2, "MlsGroupFactory");
        let factory = chain
            .deploy(
                MlsGroupFactory::deploy_builder(
                    chain.provider(),
                    implementation,
                    registry.address(),
                ),
                Contract::Factory,
            )
            .await?;
        progress(Self::DEPLOY_STEPS, "");
        Ok(Deployment {
            chain_id: chain.chain_id(),
            erc7627: registry.address(),
            group_implementation: implementation,
            group_factory: factory,
            block: block + 1,
        })
    }

    /// [`deploy_with_progress`](Self::deploy_with_progress) through the CREATE2 deployer.
    async fn deploy_create2(
        chain: &Chain,
        block: u64,
        mut progress: impl FnMut(u64, &str),
    ) -> Result<Deployment, Error> {
        let mut d = Self::deterministic(chain.chain_id());
        let salt = deployment_salt();
        let addresses = [d.erc7627, d.group_implementation, d.group_factory];
        let mut sent = false;
        for (i, ((name, code, contract), address)) in
            initcodes().into_iter().zip(addresses).enumerate()
        {
            progress(i as u64, name);
            if !chain.provider().get_code_at(address).await?.is_empty() {
                continue;
            }
            let mut input = salt.to_vec();
            input.extend_from_slice(&code);
            let call = CallBuilder::new_raw(chain.provider(), input.into()).to(CREATE2_DEPLOYER);
            chain.transact(call, contract).await?;
            if chain.provider().get_code_at(address).await?.is_empty() {
                return Err(Error::NoCode {
                    address,
                    what: name,
                });
            }
            sent = true;
        }
        progress(Self::DEPLOY_STEPS, "");
        d.block = if sent {
            block + 1
        } else {
            first_block_with_code(chain, d.erc7627).await
        };
        Ok(d)
    }

    /// Checks that `chain` is this deployment's chain and has code at every address.
    pub async fn check(&self, chain: &Chain) -> Result<(), Error> {
        if chain.chain_id() != self.chain_id {
            return Err(Error::WrongChain {
                deployment: self.chain_id,
                rpc: chain.chain_id(),
            });
        }
        for (address, what) in [
            (self.erc7627, "ERC7627"),
            (self.group_implementation, "MlsGroup implementation"),
            (self.group_factory, "MlsGroupFactory"),
        ] {
            if chain.provider().get_code_at(address).await?.is_empty() {
                return Err(Error::NoCode { address, what });
            }
        }
        Ok(())
    }

    /// Connects to an existing deployment: checks it, then returns the registry and factory
    /// clients.
    pub async fn connect(&self, chain: &Chain) -> Result<(Erc7627, GroupFactory), Error> {
        self.check(chain).await?;
        Ok((
            chain.erc7627(self.erc7627),
            chain.factory(self.group_factory),
        ))
    }

    /// Writes the deployment as JSON.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let file_error = |reason: String| Error::DeploymentFile {
            path: path.to_owned(),
            reason,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| file_error(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| file_error(e.to_string()))
    }

    /// Reads a deployment written by [`Deployment::save`].
    pub fn load(path: &Path) -> Result<Deployment, Error> {
        let file_error = |reason: String| Error::DeploymentFile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| file_error(e.to_string()))
    }
}

/// The first block at whose end `address` has code: a binary search with `eth_getCode` at
/// past blocks (about 25 calls on a chain of 20 million blocks); 0 when the node does not
/// answer for old blocks (a pruned node), so scans start at the beginning rather than miss.
async fn first_block_with_code(chain: &Chain, address: Address) -> u64 {
    let Ok(head) = chain.provider().get_block_number().await else {
        return 0;
    };
    let has_code = |n: u64| async move {
        chain
            .provider()
            .get_code_at(address)
            .block_id(n.into())
            .await
            .map(|c| !c.is_empty())
    };
    let (mut lo, mut hi) = (0u64, head);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match has_code(mid).await {
            Ok(true) => hi = mid,
            Ok(false) => lo = mid + 1,
            Err(_) => return 0,
        }
    }
    lo
}

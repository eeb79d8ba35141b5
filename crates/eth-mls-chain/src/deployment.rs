//! A deployment of the contracts on one chain: deploy, save, load, connect.

use std::path::Path;

use alloy::primitives::Address;
use alloy::providers::Provider;
use serde::{Deserialize, Serialize};

use crate::bindings::{MlsGroup, MlsGroupFactory};
use crate::error::Contract;
use crate::{Chain, Erc7627, Error, GroupFactory};

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

    /// Deploys ERC7627, the MlsGroup implementation and the factory with `chain`'s signer.
    pub async fn deploy(chain: &Chain) -> Result<Deployment, Error> {
        Self::deploy_with_progress(chain, |_, _| {}).await
    }

    /// [`deploy`](Self::deploy), calling `progress(done, next)` before each of the
    /// [`DEPLOY_STEPS`](Self::DEPLOY_STEPS) contracts (with how many are deployed and the name
    /// of the next) and `progress(3, "")` at the end: for progress bars.
    pub async fn deploy_with_progress(
        chain: &Chain,
        mut progress: impl FnMut(u64, &str),
    ) -> Result<Deployment, Error> {
        if chain.sender().is_none() {
            return Err(Error::NoSigner);
        }
        let block = chain.provider().get_block_number().await?;
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

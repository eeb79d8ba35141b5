//! The command line (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// End-to-end encrypted group chat between Ethereum accounts (MLS, suite 0x0004).
#[derive(Debug, Parser)]
#[command(name = "ethmls", version)]
pub struct Cli {
    /// Data directory (keystores, stores, deployment, config).
    #[arg(long, global = true, env = "ETHMLS_HOME")]
    pub home: Option<PathBuf>,
    /// One JSON envelope per command on stdout (NDJSON events for streams).
    #[arg(long, global = true)]
    pub json: bool,
    /// The chain's JSON-RPC endpoint.
    #[arg(long, global = true, env = "ETH_RPC_URL")]
    pub rpc_url: Option<String>,
    /// The account (keystore name) to act as.
    #[arg(long, global = true, env = "ETHMLS_ACCOUNT")]
    pub account: Option<String>,
    /// A file whose first line is the account's password.
    #[arg(long, global = true, env = "ETHMLS_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// The deployment file (default: the home's deployment.json).
    #[arg(long, global = true, env = "ETHMLS_DEPLOYMENT")]
    pub deployment: Option<PathBuf>,
    /// How frames travel: `chain` (ERC-7627 messages: durable, paid per frame), `gossip`
    /// (libp2p gossipsub through peers, history from an `ethmls node`), or `both`. Default:
    /// `both` when peers are configured, else `chain`.
    #[arg(long, global = true, env = "ETHMLS_DELIVERY", value_enum)]
    pub delivery: Option<Delivery>,
    /// A gossip peer to connect to, as `/ip4/ADDR/tcp/PORT/p2p/PEERID` (what `ethmls node`
    /// prints); repeat it, or give several separated by commas.
    #[arg(
        long = "peer",
        global = true,
        env = "ETHMLS_PEERS",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,
    /// The address this process's gossip node listens on (default `/ip4/127.0.0.1/tcp/0`;
    /// `ethmls node`: `/ip4/127.0.0.1/tcp/7627`).
    #[arg(long, global = true, env = "ETHMLS_LISTEN")]
    pub listen: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How frames travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// ERC-7627 messages on the chain.
    Chain,
    /// libp2p gossipsub.
    Gossip,
    /// Both at once: fast through gossip, durable through the chain.
    Both,
}

impl Delivery {
    /// Its name, as typed.
    pub fn name(self) -> &'static str {
        match self {
            Delivery::Chain => "chain",
            Delivery::Gossip => "gossip",
            Delivery::Both => "both",
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accounts (keystore v3 files, as cast keeps them).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Starts a local anvil, deploys the contracts, writes the deployment; runs until
    /// interrupted (Ctrl-C, SIGTERM) or its standard input closes.
    Devnet {
        /// Port (default: anvil's choice of a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Stop the local chain that commands start in the background when no RPC endpoint
        /// is given (its state stays in the home).
        #[arg(long)]
        stop: bool,
    },
    /// Deploys the contracts with the account (any RPC) and writes the deployment.
    Deploy,
    /// The chat page in the browser, served by the account's daemon (started when it is
    /// not running).
    Ui {
        /// Print the page's address instead of opening a browser.
        #[arg(long)]
        no_open: bool,
    },
    /// The account's client kept running, serving a local API (JSON-RPC 2.0 over a Unix
    /// socket, and HTTP + WebSocket on 127.0.0.1 with a token): while it runs, every command
    /// of the account goes through it, so several terminals can use one account at once.
    Daemon {
        /// Start it in the background and return once it serves (its output goes to
        /// `daemon/ACCOUNT.log` in the home).
        #[arg(long, conflicts_with_all = ["stop", "status"])]
        detach: bool,
        /// Stop the account's daemon.
        #[arg(long, conflicts_with = "status")]
        stop: bool,
        /// Whether the account's daemon runs, and where it serves.
        #[arg(long)]
        status: bool,
        /// The HTTP + WebSocket port on 127.0.0.1 (default: a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Read the password from standard input (how `--detach` and `ui` hand it over).
        #[arg(long, hide = true)]
        password_stdin: bool,
    },
    /// Gives an address ETH on a local anvil.
    Fund {
        /// The address.
        address: String,
        /// How much.
        #[arg(long, default_value_t = 100)]
        eth: u64,
    },
    /// Publishes the account's keys (prekey bundle, inbox key) in the ERC-7627 registry.
    Register,
    /// Groups.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Sends a message to a group.
    Send {
        /// The group contract.
        group: String,
        /// The message.
        text: String,
    },
    /// The messages of a group this account received (and sent), from its store: nothing is
    /// fetched (`ethmls sync` takes in what arrived).
    Read {
        /// The group contract.
        group: String,
    },
    /// Prints events as they come (NDJSON with --json), until --timeout, --count, Ctrl-C or
    /// SIGTERM.
    Watch {
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Interactive chat in a group: lines typed are sent, messages shown with their sender;
    /// ends at end of input, Ctrl-C or SIGTERM.
    Chat {
        /// The group contract.
        group: String,
    },
    /// Checks this account: each group's local epoch against the chain, forks, missed or
    /// lost messages, credentials due for renewal.
    Doctor,
    /// Runs a gossip relay and history store for the accounts that connect to it (until
    /// Ctrl-C, SIGTERM or the end of its standard input); prints the address peers give as
    /// `--peer`.
    Node,
    /// Shows or changes the home's settings (config.json): rpc_url, account, delivery, peers,
    /// listen, confirmations.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Starts afresh on the chain this home uses when it is new (a restarted devnet, a local
    /// chain whose state was lost or damaged) or the account's store is damaged: what no
    /// longer fits is moved to `<home>/reset/<time>/` (asks first on a terminal).
    Reset {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Takes in what arrived and runs pending work for a while.
    Sync {
        /// Seconds to keep going.
        #[arg(long, default_value_t = 2)]
        wait: u64,
    },
}

impl Command {
    /// The command's name in the JSON envelope.
    pub fn name(&self) -> String {
        match self {
            Command::Account(a) => format!("account {}", a.name()),
            Command::Devnet { .. } => "devnet".into(),
            Command::Deploy => "deploy".into(),
            Command::Daemon { .. } => "daemon".into(),
            Command::Ui { .. } => "ui".into(),
            Command::Fund { .. } => "fund".into(),
            Command::Register => "register".into(),
            Command::Group(g) => format!("group {}", g.name()),
            Command::Send { .. } => "send".into(),
            Command::Read { .. } => "read".into(),
            Command::Watch { .. } => "watch".into(),
            Command::Chat { .. } => "chat".into(),
            Command::Doctor => "doctor".into(),
            Command::Node => "node".into(),
            Command::Config(c) => format!("config {}", c.name()),
            Command::Sync { .. } => "sync".into(),
            Command::Reset { .. } => "reset".into(),
        }
    }
}

/// `ethmls account ...`.
#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Creates an account with a new random key.
    New {
        /// Its name.
        name: String,
    },
    /// Imports a key (from a file, or typed at a hidden prompt).
    Import {
        /// Its name.
        name: String,
        /// A file holding the hex key.
        #[arg(long)]
        private_key_file: Option<PathBuf>,
    },
    /// Lists the accounts.
    List,
    /// Shows an account's address.
    Show {
        /// Its name (default: the current account).
        name: Option<String>,
    },
    /// Deletes an account's keystore (asks to type its name on a terminal; `--yes` in
    /// scripts). Without a backup of the key, the account is lost.
    Remove {
        /// Its name.
        name: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Changes the keystore's password (the account's stores stay readable: their key comes
    /// from the account's key, not the password).
    Password {
        /// Its name.
        name: String,
        /// A file whose first line is the new password (else asked twice on a terminal).
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
}

impl AccountCmd {
    fn name(&self) -> &'static str {
        match self {
            AccountCmd::New { .. } => "new",
            AccountCmd::Import { .. } => "import",
            AccountCmd::List => "list",
            AccountCmd::Show { .. } => "show",
            AccountCmd::Remove { .. } => "remove",
            AccountCmd::Password { .. } => "password",
        }
    }
}

/// `ethmls group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Creates a group (its contract through the factory) with this account as owner.
    Create {
        /// The group's name.
        name: String,
        /// Every member may commit (default: admins only).
        #[arg(long)]
        any_member: bool,
    },
    /// Invites an account (it must have run `ethmls register`).
    Invite {
        /// The group contract.
        group: String,
        /// The invitee's address.
        address: String,
        /// A note shown to the invitee.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Invitations received and not answered.
    Requests,
    /// Accepts an invitation and waits until the inviter adds this account.
    Accept {
        /// The invitation id (from `group requests`).
        id: String,
        /// Seconds to wait for the Welcome.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Declines an invitation.
    Decline {
        /// The invitation id.
        id: String,
    },
    /// The members of a group.
    Members {
        /// The group contract.
        group: String,
    },
    /// The groups this account follows.
    List,
    /// Removes a member (admins).
    Remove {
        /// The group contract.
        group: String,
        /// The member's address.
        address: String,
    },
    /// Leaves a group (asks an admin to remove this account).
    Leave {
        /// The group contract.
        group: String,
    },
    /// Commits a fresh leaf for this account (new keys).
    Update {
        /// The group contract.
        group: String,
    },
    /// The owner replaces the registered commit a stalled group cannot process (a griefer's
    /// garbage) with its own, removing the griefer in it (`--remove`).
    Recover {
        /// The group contract.
        group: String,
        /// A member to remove in the replacement (repeatable).
        #[arg(long)]
        remove: Vec<String>,
    },
}

impl GroupCmd {
    fn name(&self) -> &'static str {
        match self {
            GroupCmd::Create { .. } => "create",
            GroupCmd::Invite { .. } => "invite",
            GroupCmd::Requests => "requests",
            GroupCmd::Accept { .. } => "accept",
            GroupCmd::Decline { .. } => "decline",
            GroupCmd::Members { .. } => "members",
            GroupCmd::List => "list",
            GroupCmd::Remove { .. } => "remove",
            GroupCmd::Update { .. } => "update",
            GroupCmd::Leave { .. } => "leave",
            GroupCmd::Recover { .. } => "recover",
        }
    }
}

/// `ethmls config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Prints the settings in effect and where each came from.
    Show,
    /// Sets one: `rpc_url`, `account`, `delivery`, `peers` (comma-separated), `listen`,
    /// `confirmations` (blocks on top of a commit's registration before it counts) or
    /// `max_fee_gwei` (the most a transaction pays per gas; nothing is sent above it).
    Set {
        /// The setting.
        key: String,
        /// Its value.
        value: String,
    },
    /// Removes one (its default applies again).
    Unset {
        /// The setting.
        key: String,
    },
}

impl ConfigCmd {
    fn name(&self) -> &'static str {
        match self {
            ConfigCmd::Show => "show",
            ConfigCmd::Set { .. } => "set",
            ConfigCmd::Unset { .. } => "unset",
        }
    }
}

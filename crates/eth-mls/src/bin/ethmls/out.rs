//! What `ethmls` prints: one envelope per command (`--json`) or text, NDJSON events, progress on
//! stderr, and failures with distinct exit codes and what to do next.

use std::io::Write;
use std::path::Path;

use eth_mls::ClientEvent;
use serde_json::{Value, json};

/// The kind of a failure; each has its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Anything else (1).
    Other,
    /// Bad arguments, missing files or settings (2, as clap's own usage errors).
    Usage,
    /// The chain: RPC, transaction, contract (3).
    Chain,
    /// Delivery (4).
    Transport,
    /// Something did not verify: signature, credential, registration, password (5).
    Verification,
    /// This member forked from its group (6).
    Fork,
}

impl Kind {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::Chain => 3,
            Kind::Transport => 4,
            Kind::Verification => 5,
            Kind::Fork => 6,
        }
    }

    /// Its name in the JSON envelope.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Other => "error",
            Kind::Usage => "usage",
            Kind::Chain => "chain",
            Kind::Transport => "transport",
            Kind::Verification => "verification",
            Kind::Fork => "fork",
        }
    }
}

/// What some failures are, for the code that can act on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// The chain is not the one the account's state was made on.
    NewChain,
    /// The local chain (anvil) exited as it started.
    LocalChainDied,
    /// The API has no such method.
    NoMethod,
}

/// A failed command: what went wrong and what to do next; with what the command found
/// before it failed, when it has something to show (`doctor`'s report).
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    message: String,
    hint: String,
    tag: Option<Tag>,
    result: Option<Value>,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: Kind, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            hint: hint.into(),
            tag: None,
            result: None,
        }
    }

    /// The chain is new to this account's state (see [`Tag::NewChain`]).
    pub fn new_chain(message: impl Into<String>) -> Self {
        let mut f = Self::new(
            Kind::Chain,
            message,
            "`ethmls reset --yes` moves this account's state for the old chain aside (kept, not \
             deleted) and starts afresh on this one: register again, then create or be invited \
             to groups",
        );
        f.tag = Some(Tag::NewChain);
        f
    }

    /// This failure, tagged.
    pub fn tagged(mut self, tag: Tag) -> Self {
        self.tag = Some(tag);
        self
    }

    /// Its tag.
    pub fn tag(&self) -> Option<Tag> {
        self.tag
    }

    /// Whether the chain is new to the account's state.
    pub fn is_new_chain(&self) -> bool {
        self.tag == Some(Tag::NewChain)
    }

    /// This failure, with what the command found (printed with it).
    pub fn with_result(mut self, result: Value) -> Self {
        self.result = Some(result);
        self
    }

    /// What the command found before it failed.
    pub fn result(&self) -> Option<&Value> {
        self.result.as_ref()
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to do about it.
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A usage failure.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message, hint)
    }

    /// A file that could not be read or written.
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        Self::new(
            Kind::Usage,
            format!("{}: {e}", path.display()),
            "check the path and its permissions",
        )
    }

    /// A chain failure.
    pub fn chain(e: eth_mls_chain::Error, hint: &str) -> Self {
        let message = e.to_string();
        if message.contains(FEE_CAP) {
            return Self::new(Kind::Chain, message, FEE_HINT);
        }
        Self::new(Kind::Chain, message, hint)
    }

    /// A client failure, sorted by kind.
    pub fn from_client(e: eth_mls::Error) -> Self {
        use eth_mls::Error as E;
        let (kind, hint) = match &e {
            E::Chain(m) if m.contains(FEE_CAP) => (Kind::Chain, FEE_HINT),
            E::Chain(_) => (
                Kind::Chain,
                "check the RPC endpoint (--rpc-url) and that the account has ETH for gas (on a \
                 local anvil, `ethmls fund ADDRESS` gives it some)",
            ),
            E::Delivery(_) => (
                Kind::Transport,
                "check the network and retry; nothing was lost",
            ),
            E::Forked { .. } => (
                Kind::Fork,
                "this member asked the group's owner to re-add it; run `ethmls sync` later",
            ),
            E::WrongPassword => (Kind::Verification, "check the password file"),
            E::UnknownGroup { .. } => (Kind::Usage, "see `ethmls group list`"),
            E::UnknownRequest => (Kind::Usage, "see `ethmls group requests`"),
            E::NoBundle { .. } => (
                Kind::Usage,
                "the account has not published its keys: it runs `ethmls register` first",
            ),
            E::NotMember { .. } => (Kind::Usage, "this account is not a member of the group"),
            E::GroupExists { .. } => (Kind::Usage, "pick another group name"),
            E::StoreInUse { .. } => (
                Kind::Usage,
                "stop the other ethmls process of this account (a `watch` or `chat`?)",
            ),
            E::Keystore(_) => (Kind::Usage, "check the keystore file"),
            E::BadSiwe(_)
            | E::WrongAccount { .. }
            | E::WrongGroup
            | E::KeyPackageMismatch
            | E::WrongExpiry
            | E::Expired
            | E::BadSignature(_)
            | E::WrongEpoch { .. }
            | E::CommitHashMismatch
            | E::AclMismatch { .. }
            | E::CommitterNotAllowed { .. }
            | E::EpochAuthenticatorMismatch { .. }
            | E::WrongChain { .. }
            | E::UntrustedFactory
            | E::NotFactoryGroup
            | E::Erc1271Unavailable(_) => (
                Kind::Verification,
                "the input was refused and nothing changed; check who sent it",
            ),
            _ => (Kind::Other, ""),
        };
        Self::new(kind, e.to_string(), hint)
    }
}

/// The names of the home's accounts, by lowercase `0x` address (set once by `main`).
static NAMES: std::sync::OnceLock<std::collections::BTreeMap<String, String>> =
    std::sync::OnceLock::new();

/// Top-level result fields a command already printed in its own text form.
static PRINTED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

/// Sets the names shown for the home's accounts' addresses.
pub fn set_names(names: std::collections::BTreeMap<String, String>) {
    let _ = NAMES.set(names);
}

/// The name of `address`, when it is one of the home's accounts.
pub fn name_of(address: &str) -> Option<&'static str> {
    NAMES
        .get()?
        .get(&address.to_ascii_lowercase())
        .map(String::as_str)
}

/// Marks a result field as printed by its command (text mode leaves it out of the rest).
pub fn printed(field: &'static str) {
    if let Ok(mut p) = PRINTED.lock() {
        p.push(field);
    }
}

/// Adds `<field>_name` beside each address field of an event or record whose account has a
/// name in this home (`sender`, `member`, `from`, `committer`, `owner`).
pub fn annotate(v: &mut Value) {
    let Value::Object(map) = v else { return };
    let mut names = Vec::new();
    for key in ["sender", "member", "from", "committer", "owner"] {
        if let Some(name) = map.get(key).and_then(Value::as_str).and_then(name_of) {
            names.push((format!("{key}_name"), name));
        }
    }
    for (k, n) in names {
        map.insert(k, Value::String(n.to_string()));
    }
}

/// An address as text: `name (0xabcd…1234)` for the home's accounts, else the address.
pub fn who(address: &str) -> String {
    match name_of(address) {
        Some(n) => format!("{} ({})", clean(n), short_address(address)),
        None => clean(address).into_owned(),
    }
}

fn short_address(a: &str) -> String {
    if a.len() == 42 && a.is_ascii() {
        format!("{}…{}", &a[..6], &a[38..])
    } else {
        clean(a).into_owned()
    }
}

/// Output mode.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// JSON envelopes instead of text.
    pub json: bool,
}

impl Out {
    /// Output in text or JSON.
    pub fn new(json: bool) -> Self {
        Out { json }
    }

    /// Progress, on stderr (never mixed into the JSON on stdout).
    pub fn progress(&self, what: &str) {
        say_err!("… {what}");
    }

    /// One event: an NDJSON line, or a line of text.
    pub fn event(&self, e: &Value) {
        let mut e = e.clone();
        annotate(&mut e);
        let mut stdout = std::io::stdout().lock();
        let line = if self.json {
            e.to_string()
        } else {
            event_text(&e)
        };
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }

    /// The command succeeded: its envelope (JSON) or its result (text); exit code 0.
    pub fn ok(&self, command: String, result: Value) {
        if self.json {
            say!(
                "{}",
                json!({ "ok": true, "command": command, "result": result })
            );
        } else {
            let mut result = result;
            if let (Value::Object(map), Ok(printed)) = (&mut result, PRINTED.lock()) {
                for k in printed.iter() {
                    map.remove(*k);
                }
            }
            print_text(&result);
        }
    }

    /// The command failed: the envelope or a message on stderr, and its exit code.
    pub fn fail(&self, f: &Failure) -> ! {
        if self.json {
            let mut envelope = json!({
                "ok": false,
                "error": { "kind": f.kind.name(), "code": f.kind.code(), "message": f.message, "hint": f.hint },
            });
            if let Some(r) = &f.result {
                envelope["result"] = r.clone();
            }
            say!("{envelope}");
        } else {
            if let Some(r) = &f.result {
                print_text(r);
            }
            say_err!("error: {}", f.message);
            if !f.hint.is_empty() {
                say_err!("  → {}", f.hint);
            }
        }
        std::process::exit(f.kind.code())
    }
}

/// A progress bar on stderr: redrawn in place on a terminal (`[#####.....] 3/6 what`), one
/// line per change otherwise (logs and tests read those); never on stdout.
pub struct Progress {
    what: String,
    total: u64,
    at: Option<u64>,
    tty: bool,
    drawn: bool,
}

impl Progress {
    /// A bar for `what`, out of `total` (0: a count with no end).
    pub fn new(what: &str, total: u64) -> Self {
        Progress {
            what: what.to_string(),
            total,
            at: None,
            tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            drawn: false,
        }
    }

    /// Moves the bar to `at` (drawn only when it changed).
    pub fn set(&mut self, at: u64) {
        if self.at == Some(at) {
            return;
        }
        self.at = Some(at);
        let width = 20u64;
        let count = if let Some(filled) = (at.min(self.total) * width).checked_div(self.total) {
            let filled = filled as usize;
            format!(
                "[{}{}] {at}/{}",
                "#".repeat(filled),
                ".".repeat(width as usize - filled),
                self.total
            )
        } else {
            format!("{at}")
        };
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K… {} {count}", self.what);
            self.drawn = true;
        } else {
            let _ = writeln!(err, "… {} {count}", self.what);
        }
        let _ = err.flush();
    }

    /// Ends the bar (a newline after an in-place bar).
    pub fn done(&mut self) {
        if self.tty && self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err);
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done();
    }
}

/// Text another account wrote (a message, an invitation's note, a group name), made safe for a
/// terminal (security review L4): control characters (C0, DEL, C1: newlines, escape
/// sequences, carriage returns) and the bidirectional overrides that reorder what is shown are
/// printed as `\u{…}` escapes, so nobody can forge a line, move the cursor or recolour the
/// screen. Everything else is printed as it is.
pub fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A string field of an event or result, cleaned for the terminal.
fn field<'a>(v: &'a Value, key: &str, default: &'a str) -> std::borrow::Cow<'a, str> {
    clean(v[key].as_str().unwrap_or(default))
}

/// A result as text: every field of the JSON result, `key: value` lines, nested objects and
/// lists indented under their key (a list of objects as one block per item), others' text
/// cleaned for the terminal.
fn print_text(result: &Value) {
    let mut lines = Vec::new();
    text_lines(result, 0, &mut lines);
    let mut stdout = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(stdout, "{l}");
    }
}

/// `v` as indented lines (see [`print_text`]).
pub fn text_lines(v: &Value, indent: usize, lines: &mut Vec<String>) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        lines.push(format!("{pad}{k}:"));
                        text_lines(v, indent + 1, lines);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        lines.push(format!("{pad}{k}:"));
                        text_lines(v, indent + 1, lines);
                    }
                    v => lines.push(format!("{pad}{k}: {}", scalar(v))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        // The first field on the dash line, the rest under it.
                        let mut sub = Vec::new();
                        text_lines(item, indent + 1, &mut sub);
                        if let Some(first) = sub.first_mut() {
                            *first = format!("{pad}- {}", first.trim_start());
                        }
                        lines.extend(sub);
                    }
                    Value::Array(_) => {
                        lines.push(format!("{pad}-"));
                        text_lines(item, indent + 1, lines);
                    }
                    v => lines.push(format!("{pad}- {}", scalar(v))),
                }
            }
        }
        v => lines.push(format!("{pad}{}", scalar(v))),
    }
}

/// A scalar as text: strings cleaned, `null` as `-`, empty lists and objects as `none`.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => clean(s).into_owned(),
        Value::Null => "-".into(),
        Value::Array(_) | Value::Object(_) => "none".into(),
        v => v.to_string(),
    }
}

fn event_text(e: &Value) -> String {
    let kind = e["event"].as_str().unwrap_or("event");
    match kind {
        "sent" => format!(
            "[{}] you: {}",
            short(e["group"].as_str()),
            field(e, "text", "")
        ),
        "message" => format!(
            "[{}] {}: {}",
            short(e["group"].as_str()),
            who(e["sender"].as_str().unwrap_or("?")),
            field(e, "text", "")
        ),
        "member_added" | "member_removed" => format!(
            "[{}] {} {}",
            short(e["group"].as_str()),
            who(e["member"].as_str().unwrap_or("?")),
            if kind == "member_added" {
                "was added"
            } else {
                "was removed"
            }
        ),
        "node_ready" => {
            let addresses: Vec<String> = e["addresses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(|s| clean(s).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "relay {} ready; peers give one of these as --peer (or `ethmls config set \
                 peers ADDRESS`):\n  {}",
                field(e, "peer_id", "?"),
                addresses.join("\n  ")
            )
        }
        "devnet_ready" => format!(
            "devnet ready: {} (chain {}), contracts deployed, {} written; Ctrl-C ends it",
            field(&e["devnet"], "rpc_url", "?"),
            e["devnet"]["chain_id"],
            field(&e["devnet"], "file", "the deployment")
        ),
        _ => {
            let mut parts = vec![kind.to_string()];
            if let Value::Object(map) = e {
                for (k, v) in map {
                    if k != "event" {
                        parts.push(format!(
                            "{k}={}",
                            v.as_str().map_or(v.to_string(), |s| clean(s).into_owned())
                        ));
                    }
                }
            }
            parts.join(" ")
        }
    }
}

fn short(a: Option<&str>) -> String {
    let a = clean(a.unwrap_or("?")).into_owned();
    match a.char_indices().nth(10) {
        Some((i, _)) => format!("{}…", &a[..i]),
        None => a,
    }
}

/// A client event as JSON (`event` names its kind).
pub fn event_json(e: &ClientEvent) -> Value {
    let a = |x: &eth_mls_siwe::Address| format!("{x:#x}");
    match e {
        ClientEvent::Message {
            group,
            sender,
            epoch,
            data,
        } => {
            json!({ "event": "message", "group": a(group), "sender": a(sender), "epoch": epoch, "text": String::from_utf8_lossy(data) })
        }
        ClientEvent::MissedMessages {
            group,
            sender,
            epoch,
            count,
        } => {
            json!({ "event": "missed_messages", "group": a(group), "sender": a(sender), "epoch": epoch, "count": count })
        }
        ClientEvent::MessageLost {
            group,
            epoch,
            reason,
        } => {
            json!({ "event": "message_lost", "group": a(group), "epoch": epoch, "reason": reason })
        }
        ClientEvent::Joined { group, epoch } => {
            json!({ "event": "joined", "group": a(group), "epoch": epoch })
        }
        ClientEvent::CommitMerged {
            group,
            epoch,
            committer,
        } => {
            json!({ "event": "commit_merged", "group": a(group), "epoch": epoch, "committer": a(committer) })
        }
        ClientEvent::MemberAdded { group, member } => {
            json!({ "event": "member_added", "group": a(group), "member": a(member) })
        }
        ClientEvent::MemberRemoved { group, member } => {
            json!({ "event": "member_removed", "group": a(group), "member": a(member) })
        }
        ClientEvent::Removed { group } => json!({ "event": "removed", "group": a(group) }),
        ClientEvent::InvitationReceived {
            request_id,
            from,
            group,
            note,
        } => {
            json!({ "event": "invitation_received", "id": hex::encode(request_id), "from": a(from), "group": a(group), "note": note })
        }
        ClientEvent::InvitationDeclined { request_id, from } => {
            json!({ "event": "invitation_declined", "id": hex::encode(request_id), "from": a(from) })
        }
        ClientEvent::RequestReceived { group, from, kind } => {
            json!({ "event": "request_received", "group": a(group), "from": a(from), "kind": format!("{kind:?}") })
        }
        ClientEvent::RequestRejected {
            request_id,
            from,
            reason,
        } => {
            json!({ "event": "request_rejected", "id": hex::encode(request_id), "from": a(from), "reason": format!("{reason:?}") })
        }
        ClientEvent::ForkDetected {
            group,
            epoch,
            reason,
        } => {
            json!({ "event": "fork_detected", "group": a(group), "epoch": epoch, "reason": reason })
        }
        ClientEvent::ChainReorganized {
            group,
            block,
            dropped,
        } => {
            json!({ "event": "chain_reorganized", "group": a(group), "block": block,
                    "dropped_epochs": dropped,
                    "hint": if dropped.is_empty() {
                        "nothing this account acted on was lost; more confirmations make this rarer: ethmls config set confirmations N"
                    } else {
                        "commits this account merged are no longer registered: their committers register them again"
                    } })
        }
        ClientEvent::Stalled {
            group,
            epoch,
            reason,
        } => {
            json!({ "event": "stalled", "group": a(group), "epoch": epoch, "reason": reason,
                    "hint": "the group's owner can replace the commit: ethmls group recover" })
        }
        ClientEvent::MergeDelayed {
            group,
            epoch,
            error,
        } => {
            json!({ "event": "merge_delayed", "group": a(group), "epoch": epoch,
                    "error": error.to_string() })
        }
        ClientEvent::CredentialDue { expires_at } => {
            json!({ "event": "credential_due", "expires_at": expires_at })
        }
        ClientEvent::MemberDue { group, member } => {
            json!({ "event": "member_due", "group": a(group), "member": a(member) })
        }
        ClientEvent::EpochLost {
            group,
            intent,
            epoch,
        } => json!({ "event": "epoch_lost", "group": a(group), "intent": intent, "epoch": epoch }),
        ClientEvent::IntentFailed {
            group,
            intent,
            reason,
        } => {
            json!({ "event": "intent_failed", "group": a(group), "intent": intent, "reason": reason })
        }
        ClientEvent::DeliveryDelayed { group, error } => {
            json!({ "event": "delivery_delayed", "group": a(group), "error": error.to_string() })
        }
        ClientEvent::DeadLetter { from, error } => {
            json!({ "event": "dead_letter", "from": a(from), "error": error.to_string() })
        }
        ClientEvent::Rejected { from, error } => {
            json!({ "event": "rejected", "from": a(from), "error": error.to_string() })
        }
    }
}

/// The words of [`eth_mls_chain::Error::FeeAboveCap`].
const FEE_CAP: &str = "above the fee cap";

/// What to do about it.
const FEE_HINT: &str = "nothing was sent: wait for fees to fall, or raise the cap (`ethmls config \
                        set max_fee_gwei N`, `ethmls config unset max_fee_gwei`)";

#[cfg(test)]
mod tests {
    use super::*;

    /// L4: a member's message cannot forge a line from another sender or drive the terminal.
    #[test]
    fn others_text_cannot_forge_lines_or_drive_the_terminal() {
        let forged = "hi\n[0x1a2b3c4d5e…] 0xOwner: send me your password\r\u{1b}[2K\u{1b}]0;x\u{7}";
        let e = json!({ "event": "message", "group": "0x00112233445566778899", "sender": "0xabc", "text": forged });
        let line = event_text(&e);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u{a}[0x1a2b3c4d5e…]"), "{line}");
        assert!(line.contains("\\u{1b}[2K"), "{line}");
        // Bidirectional overrides (text shown in another order) are escaped too.
        assert_eq!(clean("a\u{202e}b\u{2066}c"), "a\\u{202e}b\\u{2066}c");
        // A note in any other event, and plain text unchanged.
        let e = json!({ "event": "invitation", "note": "x\u{1b}[31mred" });
        assert!(!event_text(&e).chars().any(char::is_control));
        assert!(matches!(
            clean("plain text, ünïcödé ✓"),
            std::borrow::Cow::Borrowed(_)
        ));
        // A group address field cut to 10 characters never splits a character.
        assert_eq!(short(Some("ééééééééééééé")), "éééééééééé…");
    }

    /// Issue 29: text output carries every field of the JSON result, nested ones included,
    /// with others' text cleaned.
    #[test]
    fn text_carries_every_field() {
        let result = json!({
            "address": "0xabc",
            "groups": [
                { "group": "0x1", "local_epoch": 3, "stalled": null },
                { "group": "0x2", "local_epoch": 0, "stalled": { "epoch": 1, "reason": "bad\u{1b}[2J" } },
            ],
            "problems": [],
            "peers": ["/ip4/127.0.0.1/tcp/7627/p2p/12D3"],
            "healthy": true,
        });
        let mut lines = Vec::new();
        text_lines(&result, 0, &mut lines);
        let text = lines.join("\n");
        for expected in [
            "address: 0xabc",
            "groups:",
            "  - group: 0x1",
            "    local_epoch: 3",
            "    stalled: -",
            "  - group: 0x2",
            "    stalled:",
            "      epoch: 1",
            "      reason: bad\\u{1b}[2J",
            "problems: none",
            "peers:",
            "  - /ip4/127.0.0.1/tcp/7627/p2p/12D3",
            "healthy: true",
        ] {
            assert!(
                lines.iter().any(|l| l == expected),
                "{expected:?} in\n{text}"
            );
        }
        assert!(!text.contains('\u{1b}'));
    }
}

//! `ethmls chat`: standard input lines are sent; incoming messages and membership changes are
//! printed as they come, with the names of the home's accounts where they are known.

use std::time::{Duration, Instant};

use eth_mls::ClientEvent;
use eth_mls_siwe::Address;
use serde_json::{Value, json};

use crate::Cl;
use crate::out::{self, Failure, Out};

/// `ethmls chat`: standard input lines are sent; incoming messages and membership changes
/// are printed as they come. Ends at the end of input (after taking in what arrived), or at
/// SIGINT / SIGTERM (after the step under way; lines already typed are sent, queued frames
/// leave before the process exits).
pub async fn run(c: &mut Cl, g: Address, out: &Out) -> Result<Value, Failure> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let stop = crate::signals::listen();
    let me = c.address();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut input_open = true;
    let mut closing_until: Option<Instant> = None;
    loop {
        if let Some(t) = closing_until
            && Instant::now() >= t
        {
            break;
        }
        if stop.requested() {
            // Interrupted: what was typed is still sent, then the loop ends.
            while let Ok(line) = rx.try_recv() {
                if !line.trim().is_empty() {
                    c.send(g, line.as_bytes())
                        .await
                        .map_err(Failure::from_client)?;
                    sent += 1;
                    out.event(&json!({ "event": "sent", "group": format!("{g:#x}"), "sender": format!("{me:#x}"), "text": line }));
                }
            }
            break;
        }
        // Typed lines first, then one bounded look for input (never cancelled halfway: the
        // client's work is not interrupted at an await point).
        loop {
            match rx.try_recv() {
                Ok(line) if !line.trim().is_empty() => {
                    c.send(g, line.as_bytes())
                        .await
                        .map_err(Failure::from_client)?;
                    sent += 1;
                    out.event(&json!({ "event": "sent", "group": format!("{g:#x}"), "sender": format!("{me:#x}"), "text": line }));
                }
                Ok(_) => {}
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    if input_open {
                        // End of input: a last look for answers, then exit.
                        input_open = false;
                        closing_until = Some(Instant::now() + Duration::from_secs(2));
                    }
                    break;
                }
            }
        }
        if let Some(e) = c
            .next_event(Duration::from_millis(200))
            .await
            .map_err(Failure::from_client)?
        {
            let shown = match &e {
                ClientEvent::Message { group, .. } if *group == g => {
                    received += 1;
                    true
                }
                ClientEvent::MemberAdded { group, .. }
                | ClientEvent::MemberRemoved { group, .. }
                | ClientEvent::Removed { group }
                | ClientEvent::ForkDetected { group, .. } => *group == g,
                ClientEvent::InvitationReceived { .. } => true,
                _ => false,
            };
            if shown {
                out.event(&out::event_json(&e));
            }
            if matches!(e, ClientEvent::Removed { group } if group == g) {
                break;
            }
        }
    }
    c.sync().await.map_err(Failure::from_client)?;
    Ok(
        json!({ "group": format!("{g:#x}"), "sent": sent, "received": received, "interrupted": stop.requested() }),
    )
}

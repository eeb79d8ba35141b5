//! Keeping an account reachable over the 1:1 channel (security review L9, M3): when to rotate
//! the signed prekey, top up one-time prekeys and publish the bundle again — a pure function
//! of the device's state, what was last published and the time.
//!
//! A signed prekey is rotated once less than a third of its lifetime is left (the old one is
//! kept for the channel's grace period, so sessions started from it still open); one-time
//! prekeys are topped up once fewer than half the target are left (used by honest initiators,
//! or burned by someone sending one prekey message per listed key). A rotation is published
//! at once; a top-up at most once per `min_interval`, so a burner cannot make the account
//! spend gas on every frame. An account that never published its keys publishes nothing from
//! here.

/// What was last published (kept in the client's store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// When (Unix seconds).
    pub at: u64,
    /// The signed prekey it listed.
    pub signed_prekey: u32,
}

/// The device's prekeys, as far as upkeep is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The newest signed prekey: its id and expiry (Unix seconds), if any.
    pub signed_prekey: Option<(u32, u64)>,
    /// One-time prekeys held and unused.
    pub one_time_prekeys: usize,
}

/// What to do now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upkeep {
    /// Make a new signed prekey (lifetime as configured).
    pub rotate: bool,
    /// Generate this many one-time prekeys.
    pub top_up: usize,
    /// Publish the bundle.
    pub publish: bool,
}

/// The upkeep due at `now` for a device holding `held`, last published as `published`
/// (`None`: never), with `target` one-time prekeys wanted, signed prekeys living `lifetime`
/// seconds and top-ups published at most once per `min_interval` seconds.
pub fn upkeep(
    held: Held,
    published: Option<Published>,
    target: usize,
    lifetime: u64,
    min_interval: u64,
    now: u64,
) -> Upkeep {
    let Some(published) = published else {
        return Upkeep::default();
    };
    let rotate = held
        .signed_prekey
        .is_none_or(|(_, expiry)| expiry.saturating_sub(now) < lifetime / 3);
    let low = held.one_time_prekeys < target.div_ceil(2);
    let top_up_now = low && now >= published.at.saturating_add(min_interval);
    let unpublished = held
        .signed_prekey
        .is_some_and(|(id, _)| id != published.signed_prekey);
    Upkeep {
        rotate,
        top_up: if top_up_now {
            target - held.one_time_prekeys
        } else {
            0
        },
        publish: rotate || top_up_now || unpublished,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const T0: u64 = 1_000_000_000;

    fn published(at: u64, spk: u32) -> Option<Published> {
        Some(Published {
            at,
            signed_prekey: spk,
        })
    }

    #[test]
    fn nothing_is_done_for_an_account_that_never_published() {
        let held = Held {
            signed_prekey: None,
            one_time_prekeys: 0,
        };
        assert_eq!(upkeep(held, None, 20, 7 * DAY, 600, T0), Upkeep::default());
    }

    #[test]
    fn the_signed_prekey_is_rotated_with_a_third_of_its_life_left() {
        let fresh = Held {
            signed_prekey: Some((3, T0 + 7 * DAY)),
            one_time_prekeys: 20,
        };
        assert_eq!(
            upkeep(fresh, published(T0, 3), 20, 7 * DAY, 600, T0),
            Upkeep::default()
        );
        let at = T0 + 5 * DAY;
        let due = upkeep(fresh, published(T0, 3), 20, 7 * DAY, 600, at);
        assert!(due.rotate && due.publish && due.top_up == 0, "{due:?}");
        // Expired long ago (a device that was off for weeks): rotated too.
        let late = upkeep(fresh, published(T0, 3), 20, 7 * DAY, 600, T0 + 40 * DAY);
        assert!(late.rotate && late.publish);
    }

    #[test]
    fn one_time_prekeys_are_topped_up_when_half_are_gone_at_most_once_per_interval() {
        let burned = Held {
            signed_prekey: Some((3, T0 + 7 * DAY)),
            one_time_prekeys: 9,
        };
        // Published a minute ago: the top-up waits for the interval.
        let soon = upkeep(burned, published(T0, 3), 20, 7 * DAY, 600, T0 + 60);
        assert_eq!(soon, Upkeep::default());
        let later = upkeep(burned, published(T0, 3), 20, 7 * DAY, 600, T0 + 600);
        assert_eq!(
            later,
            Upkeep {
                rotate: false,
                top_up: 11,
                publish: true
            }
        );
        // Ten left of twenty is enough.
        let half = Held {
            one_time_prekeys: 10,
            ..burned
        };
        assert_eq!(
            upkeep(half, published(T0, 3), 20, 7 * DAY, 600, T0 + DAY),
            Upkeep::default()
        );
    }

    #[test]
    fn a_rotation_that_was_not_published_is_published() {
        let held = Held {
            signed_prekey: Some((4, T0 + 7 * DAY)),
            one_time_prekeys: 20,
        };
        let u = upkeep(held, published(T0 - 60, 3), 20, 7 * DAY, 600, T0);
        assert_eq!(
            u,
            Upkeep {
                rotate: false,
                top_up: 0,
                publish: true
            }
        );
    }
}

//! Fault sites in the drivers, after FoundationDB's BUGGIFY: places where
//! real systems misbehave in ways the network and the disk faults of the
//! simulation do not reach. A write that takes only part of what it was
//! given, a read that returns a few bytes, a writer woken with nothing to
//! write, an accept that fails (out of file descriptors), a clock tick that
//! comes late. Code that is correct only while these never happen is wrong;
//! the simulation makes them happen.
//!
//! Compiled in only with the `buggify` feature, which sim-tests turns on
//! (the chat-cli binary, built alone, never has it); even then a site fires
//! only on a thread where a simulation run enabled it, with
//! [`enable`]: each seed enables a random subset of sites and gets the count
//! of how often each fired from [`disable`]. Without the feature, [`fire`]
//! is the constant `false` and nothing here exists at run time.

use std::collections::BTreeMap;

/// A fault site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    /// A write takes fewer bytes than it was given.
    ShortWrite,
    /// A read returns fewer bytes than were there.
    ShortRead,
    /// A connection's writer is woken with nothing to write.
    SpuriousWake,
    /// Accepting a connection fails (as when out of file descriptors); the
    /// connection waits in the backlog.
    AcceptFails,
    /// The server's clock tick comes late.
    DelayedTick,
}

impl Site {
    /// Every site.
    pub const ALL: [Site; 5] = [
        Site::ShortWrite,
        Site::ShortRead,
        Site::SpuriousWake,
        Site::AcceptFails,
        Site::DelayedTick,
    ];

    /// Its name, for summaries.
    pub fn name(self) -> &'static str {
        match self {
            Site::ShortWrite => "short writes",
            Site::ShortRead => "short reads",
            Site::SpuriousWake => "spurious wake-ups",
            Site::AcceptFails => "failed accepts",
            Site::DelayedTick => "delayed ticks",
        }
    }
}

/// How often an enabled site fires, per pass through it.
#[cfg(feature = "buggify")]
const FIRE_PROBABILITY: f64 = 0.05;

#[cfg(feature = "buggify")]
mod active {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::{FIRE_PROBABILITY, Site};

    struct Enabled {
        sites: BTreeSet<Site>,
        rng: ChaCha8Rng,
        fired: BTreeMap<Site, u64>,
    }

    thread_local! {
        // Per thread: a simulation runs all its hosts on one thread, and a
        // sweep runs seeds on several.
        static ENABLED: RefCell<Option<Enabled>> = const { RefCell::new(None) };
    }

    pub fn enable(sites: &[Site], seed: u64) {
        ENABLED.with_borrow_mut(|enabled| {
            *enabled = Some(Enabled {
                sites: sites.iter().copied().collect(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                fired: BTreeMap::new(),
            });
        });
    }

    pub fn disable() -> BTreeMap<Site, u64> {
        ENABLED
            .with_borrow_mut(|enabled| enabled.take().map(|state| state.fired).unwrap_or_default())
    }

    pub fn fire(site: Site) -> bool {
        ENABLED.with_borrow_mut(|enabled| match enabled {
            Some(state) if state.sites.contains(&site) => {
                let fires = state.rng.random_bool(FIRE_PROBABILITY);
                if fires {
                    *state.fired.entry(site).or_insert(0) += 1;
                }
                fires
            }
            _ => false,
        })
    }

    pub fn below(bound: u64) -> u64 {
        ENABLED.with_borrow_mut(|enabled| match enabled {
            Some(state) if bound > 0 => state.rng.random_range(0..bound),
            _ => 0,
        })
    }
}

/// Enables `sites` on this thread, their choices drawn from `seed`, until
/// [`disable`].
#[cfg(feature = "buggify")]
pub fn enable(sites: &[Site], seed: u64) {
    active::enable(sites, seed);
}

/// Disables every site on this thread; returns how often each fired.
#[cfg(feature = "buggify")]
pub fn disable() -> BTreeMap<Site, u64> {
    active::disable()
}

/// Whether `site` misbehaves this time.
#[cfg(feature = "buggify")]
pub fn fire(site: Site) -> bool {
    active::fire(site)
}

/// A number below `bound` from the enabled sites' generator (0 when none
/// is enabled): how short a write, how late a tick.
#[cfg(feature = "buggify")]
pub fn below(bound: u64) -> u64 {
    active::below(bound)
}

/// Whether `site` misbehaves this time: never, in this build.
#[cfg(not(feature = "buggify"))]
#[inline(always)]
pub fn fire(_site: Site) -> bool {
    false
}

/// A number below `bound`: 0, in this build.
#[cfg(not(feature = "buggify"))]
#[inline(always)]
pub fn below(_bound: u64) -> u64 {
    0
}

/// Disables every site: none exists in this build.
#[cfg(not(feature = "buggify"))]
pub fn disable() -> BTreeMap<Site, u64> {
    BTreeMap::new()
}

#[cfg(all(test, feature = "buggify"))]
mod tests {
    use super::*;

    #[test]
    fn only_enabled_sites_fire_and_each_firing_is_counted() {
        enable(&[Site::ShortWrite], 7);
        let fired = (0..1000).filter(|_| fire(Site::ShortWrite)).count() as u64;
        assert!((20..100).contains(&fired), "about 5% of 1000: {fired}");
        assert!((0..1000).all(|_| !fire(Site::ShortRead)), "not enabled");
        assert_eq!(disable().get(&Site::ShortWrite), Some(&fired));
        assert!(!fire(Site::ShortWrite), "disabled");
    }
}

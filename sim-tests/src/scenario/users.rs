//! What the scripted users type: messages, mostly, to the room they are in;
//! now and then a second room, a private message, an action, a new
//! nickname; some leave and come back; sometimes an impostor tries a
//! nickname already in use.
//!
//! Every message's text starts `c<host> m<number>`, numbered per host across
//! everything it says, so that the oracle can tell who sent what, in which
//! order, wherever it went.

use std::time::Duration;

use rand::Rng;

use super::{ClientScript, RunScript, SECOND_ROOM, UserAction, host_name};
use crate::seeds::SeedRng;

/// Some of the users who leave do so by a signal rather than `.exit` (from
/// a stream of its own, so that the rest of the script stays as it was).
pub fn leave_by_signal(rng: &mut SeedRng, clients: &mut [ClientScript]) {
    let actions = clients
        .iter_mut()
        .flat_map(|client| &mut client.runs)
        .flat_map(|run| &mut run.actions);
    for (_, action) in actions {
        if *action == UserAction::Exit && rng.random_bool(0.4) {
            *action = UserAction::Signal;
        }
    }
}

/// A user who joins, chats at random times, and sometimes leaves and comes
/// back under the same nickname.
pub fn user_script(
    rng: &mut SeedRng,
    index: usize,
    users: usize,
    active: Duration,
    late: bool,
) -> ClientScript {
    let nick = format!("user{index}");
    let mut start = if late && rng.random_bool(0.3) {
        Duration::from_millis(rng.random_range(15_000..40_000))
    } else {
        Duration::from_millis(rng.random_range(0..3_000))
    };
    let mut runs = Vec::new();
    let mut said = 0;
    while start < active && runs.len() < 3 {
        let leaves = rng.random_bool(0.35);
        let stop = if leaves {
            start + Duration::from_millis(rng.random_range(5_000..40_000))
        } else {
            active
        };
        let mut typist = Typist {
            index,
            users,
            said,
            in_second_room: false,
            renamed: false,
        };
        let mut actions = Vec::new();
        let mut at = start + Duration::from_millis(rng.random_range(500..3_000));
        while at < stop.min(active) {
            actions.push((at, UserAction::Type(typist.next_line(rng))));
            at += Duration::from_millis(rng.random_range(200..3_000));
        }
        said = typist.said;
        if leaves && stop < active {
            actions.push((stop, UserAction::Exit));
        }
        runs.push(RunScript {
            start,
            nick: nick.clone(),
            actions,
        });
        if !leaves {
            break;
        }
        start = stop + Duration::from_millis(rng.random_range(1_000..10_000));
    }
    ClientScript {
        host: host_name(index),
        runs,
        freezes: Vec::new(),
    }
}

/// What one client run has typed so far.
struct Typist {
    index: usize,
    users: usize,
    said: usize,
    in_second_room: bool,
    renamed: bool,
}

impl Typist {
    fn next_line(&mut self, rng: &mut SeedRng) -> String {
        let roll = rng.random_range(0..100);
        match roll {
            0..8 if self.users > 1 => {
                let mut to = rng.random_range(0..self.users - 1);
                if to >= self.index {
                    to += 1;
                }
                format!("/msg user{to} {}", self.text(rng))
            }
            8..12 => format!("/me {}", self.text(rng)),
            12..18 if !self.in_second_room => {
                self.in_second_room = true;
                format!("/join {SECOND_ROOM}")
            }
            12..15 => format!("/join {}", chat_core::protocol::DEFAULT_ROOM),
            15..18 => {
                self.in_second_room = false;
                format!("/leave {SECOND_ROOM}")
            }
            18..20 if !self.renamed => {
                self.renamed = true;
                format!("/nick user{}b", self.index)
            }
            _ => self.text(rng),
        }
    }

    /// A unique, recognisable message text; now and then a long one, so
    /// that queues fill.
    fn text(&mut self, rng: &mut SeedRng) -> String {
        let text = message_text(rng, self.index, self.said);
        self.said += 1;
        text
    }
}

/// A unique, recognisable message text; now and then a long one, so that
/// queues fill.
pub fn message_text(rng: &mut SeedRng, client: usize, number: usize) -> String {
    let filler = if rng.random_bool(0.1) {
        rng.random_range(500..2_000)
    } else {
        rng.random_range(0..40)
    };
    if filler == 0 {
        return format!("c{client} m{number}");
    }
    format!("c{client} m{number} {}", "~".repeat(filler))
}

/// Sometimes an extra host tries a nickname already in use.
pub fn add_impostor(rng: &mut SeedRng, clients: &mut Vec<ClientScript>) {
    if !rng.random_bool(0.3) {
        return;
    }
    let index = clients.len();
    let victim = rng.random_range(0..index);
    let start = Duration::from_millis(rng.random_range(3_000..30_000));
    let actions = vec![(
        start + Duration::from_millis(1_000),
        UserAction::Type(message_text(rng, index, 0)),
    )];
    clients.push(ClientScript {
        host: host_name(index),
        runs: vec![RunScript {
            start,
            nick: format!("user{victim}"),
            actions,
        }],
        freezes: Vec::new(),
    });
}

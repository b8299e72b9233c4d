//! Named scenarios with fixed times, written by hand: the transcripts people
//! review as snapshots (`snapshots/sim_*.snap`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::adversary::{AdversaryScript, Episode, Garbage};
use crate::scenario::{ClientScript, FaultEvent, FaultKind, RunScript, Scenario, UserAction};

fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

fn say(at: f64, text: &str) -> (Duration, UserAction) {
    (secs(at), UserAction::Type(text.to_owned()))
}

fn exit(at: f64) -> (Duration, UserAction) {
    (secs(at), UserAction::Exit)
}

fn user(host: &str, nick: &str, start: f64, actions: Vec<(Duration, UserAction)>) -> ClientScript {
    ClientScript {
        host: host.to_owned(),
        runs: vec![RunScript {
            start: secs(start),
            nick: nick.to_owned(),
            actions,
        }],
        freezes: Vec::new(),
    }
}

fn scenario(
    name: &str,
    active: f64,
    quiet: f64,
    clients: Vec<ClientScript>,
    faults: Vec<(Duration, FaultEvent)>,
) -> Scenario {
    let mut fault_counts = BTreeMap::new();
    for client in &clients {
        if !client.freezes.is_empty() {
            fault_counts.insert(FaultKind::StopReading, client.freezes.len());
        }
    }
    for (_, fault) in &faults {
        *fault_counts.entry(fault.kind()).or_insert(0) += 1;
    }
    Scenario {
        seed: 1,
        name: Some(name.to_owned()),
        active: secs(active),
        quiet: secs(quiet),
        tick: Duration::from_millis(10),
        max_latency: Duration::from_millis(5),
        clients,
        faults,
        fault_counts,
        durable: true,
        adversaries: Vec::new(),
        buggify: (Vec::new(), 0),
    }
}

/// The original program's demo: Joshua joins, then John; they talk; John
/// leaves.
pub fn original_conversation() -> Scenario {
    let joshua = user("joshua-pc", "Joshua", 0.5, vec![say(4.0, "What's up?")]);
    let john = user(
        "john-pc",
        "John",
        1.5,
        vec![say(3.0, "Hello there"), say(5.0, "Nothing much"), exit(6.0)],
    );
    scenario(
        "the original conversation",
        10.0,
        5.0,
        vec![joshua, john],
        Vec::new(),
    )
}

/// John's computer crashes mid-conversation: Joshua sees him leave once,
/// after the server has given up on him (heartbeat timeout or closed
/// connection, then the grace period).
pub fn crashed_client() -> Scenario {
    let joshua = user(
        "joshua-pc",
        "Joshua",
        0.5,
        vec![say(4.0, "What's up?"), say(50.0, "Still there, John?")],
    );
    let john = user(
        "john-pc",
        "John",
        1.5,
        vec![say(3.0, "Hello there"), say(5.0, "Nothing much")],
    );
    let crash = (
        secs(6.0),
        FaultEvent::Crash {
            client: "john-pc".to_owned(),
        },
    );
    scenario(
        "John's client crashes",
        55.0,
        10.0,
        vec![joshua, john],
        vec![crash],
    )
}

/// Sam's client stops reading for 20 s while Alice and Bob chat with long
/// messages: the server drops Sam when his queue is full and Alice and Bob
/// never notice; when Sam reads again, his client catches up.
pub fn slow_reader() -> Scenario {
    let long = "a long message that fills queues quickly ".repeat(24);
    let alice_says = (0..100)
        .map(|index| {
            say(
                3.0 + f64::from(index) * 0.15,
                &format!("Alice {index}: {long}"),
            )
        })
        .collect();
    let alice = user("alice-pc", "Alice", 0.5, alice_says);
    let bob = user(
        "bob-pc",
        "Bob",
        0.5,
        vec![say(2.0, "Go ahead, Alice"), say(20.0, "That was a lot")],
    );
    let mut sam = user("sam-pc", "Sam", 0.5, vec![say(2.2, "I will be right back")]);
    sam.freezes.push((secs(2.5), secs(22.5)));
    scenario(
        "Sam's client stops reading",
        25.0,
        20.0,
        vec![alice, bob, sam],
        Vec::new(),
    )
}

/// The link between John and the server breaks both ways for 20 s while
/// Joshua keeps talking, then heals: John resumes and sees everything once,
/// and nobody sees him leave or join again.
pub fn healed_partition() -> Scenario {
    let joshua = user(
        "joshua-pc",
        "Joshua",
        0.5,
        vec![
            say(3.0, "Are you there?"),
            say(12.0, "Hello?"),
            say(18.0, "I will keep talking"),
            say(24.0, "until you are back"),
            say(40.0, "Welcome back"),
        ],
    );
    let john = user(
        "john-pc",
        "John",
        1.0,
        vec![
            say(4.0, "Yes"),
            say(9.0, "Sent while cut off"),
            say(36.0, "Back again"),
        ],
    );
    let partition = (
        secs(8.0),
        FaultEvent::Partition {
            client: "john-pc".to_owned(),
            until: secs(28.0),
        },
    );
    scenario(
        "a partition that heals",
        45.0,
        15.0,
        vec![joshua, john],
        vec![partition],
    )
}

/// John's link holds everything from 6 s to 16 s; at 8 s, with "Still
/// there?" unacknowledged, he closes his terminal. His client gives up on
/// the ack after its leave grace and says `quit` on the way out, so when
/// the link delivers again the server lets him go at once, not after the
/// session grace (a client that closed without its `quit` did once).
pub fn signal_during_held_link() -> Scenario {
    let joshua = user("joshua-pc", "Joshua", 0.5, vec![say(3.0, "Hi John")]);
    let john = user(
        "john-pc",
        "John",
        1.0,
        vec![
            say(4.0, "Hi"),
            say(7.0, "Still there?"),
            (secs(8.0), UserAction::Signal),
        ],
    );
    let hold = (
        secs(6.0),
        FaultEvent::Hold {
            client: "john-pc".to_owned(),
            until: secs(16.0),
        },
    );
    scenario(
        "a signal while the link holds",
        20.0,
        10.0,
        vec![joshua, john],
        vec![hold],
    )
}

/// A day in the chat, in twenty seconds: Ann and Bob talk in the lobby and
/// in dev, Ann tells Bob something privately, Cid changes nickname, and Dan,
/// joining late, is shown the lobby's recent messages.
pub fn rooms_and_private_messages() -> Scenario {
    let ann = user(
        "ann-pc",
        "Ann",
        0.5,
        vec![
            say(2.0, "Morning, all"),
            say(3.0, "/join dev"),
            say(4.0, "The build is green"),
            say(6.0, "/msg Bob lunch at noon?"),
            say(9.0, "/join lobby"),
            say(10.0, "/me waves"),
        ],
    );
    let bob = user(
        "bob-pc",
        "Bob",
        1.0,
        vec![
            say(2.5, "Morning"),
            say(3.5, "/join dev"),
            say(5.0, "Nice"),
            say(7.0, "/msg Ann yes, see you"),
            say(11.0, "/leave dev"),
        ],
    );
    let cid = user(
        "cid-pc",
        "Cid",
        1.5,
        vec![say(8.0, "/nick Cyd"), say(8.5, "Call me Cyd now")],
    );
    let dan = user("dan-pc", "Dan", 12.0, vec![say(14.0, "What did I miss?")]);
    scenario(
        "rooms, private messages and a new nickname",
        18.0,
        5.0,
        vec![ann, bob, cid, dan],
        Vec::new(),
    )
}

/// The server is killed mid-conversation and started again on the same
/// disk: the clients reconnect and resume, every acknowledged message is
/// still there, and nobody is shown anything twice or sees anyone leave.
pub fn server_restart() -> Scenario {
    let joshua = user(
        "joshua-pc",
        "Joshua",
        0.5,
        vec![
            say(3.0, "Before the crash"),
            say(5.2, "Typed while the server is down"),
            say(12.0, "After the restart"),
        ],
    );
    let john = user(
        "john-pc",
        "John",
        1.0,
        vec![say(4.0, "Me too"), say(13.0, "Still here")],
    );
    let crash = (secs(5.0), FaultEvent::ServerCrash { down: secs(2.0) });
    scenario(
        "the server crashes and restarts",
        20.0,
        10.0,
        vec![joshua, john],
        vec![crash],
    )
}

/// Joshua and John talk while a program other than ours connects again and
/// again and writes what it should not: frames after a refusal, garbage, a
/// send after quit, a guess at John's session, misused message ids, a
/// second hello, and a connection that never says hello. Each gets the
/// answer the protocol promises; Joshua and John notice only its visits.
pub fn hostile_client() -> Scenario {
    let joshua = user(
        "joshua-pc",
        "Joshua",
        0.5,
        vec![say(3.0, "Anyone there?"), say(9.0, "Quiet today")],
    );
    let john = user(
        "john-pc",
        "John",
        1.0,
        vec![say(4.0, "Here"), say(12.0, "Bye for now"), exit(14.0)],
    );
    let mut scenario = scenario(
        "a hostile client",
        30.0,
        20.0,
        vec![joshua, john],
        Vec::new(),
    );
    let episodes = vec![
        (secs(2.0), Episode::PipelinedRefusal),
        (secs(2.5), Episode::Garbage(Garbage::Http)),
        (secs(5.0), Episode::AfterQuit),
        (
            secs(6.0),
            Episode::GuessedResume {
                victim: "John".to_owned(),
            },
        ),
        (secs(7.0), Episode::IdAbuse),
        (secs(8.0), Episode::SecondHello),
        (secs(10.0), Episode::Silent { trickle: false }),
    ];
    scenario.adversaries = vec![AdversaryScript {
        host: "mallory".to_owned(),
        episodes,
    }];
    scenario
}

/// Every named scenario, by the name of its snapshot.
pub fn all() -> Vec<(&'static str, Scenario)> {
    vec![
        ("sim_original_conversation", original_conversation()),
        ("sim_crashed_client", crashed_client()),
        ("sim_slow_reader", slow_reader()),
        ("sim_healed_partition", healed_partition()),
        (
            "sim_rooms_and_private_messages",
            rooms_and_private_messages(),
        ),
        ("sim_server_restart", server_restart()),
        ("sim_hostile_client", hostile_client()),
    ]
}

//! A run as a picture (`sim seed N --svg FILE`): one horizontal lane per
//! host (the server, each client host, each adversary) over simulated time;
//! faults as shaded bands on the lanes they struck (the server's host and
//! disk across every lane); each message as a line from where and when it
//! was typed to where and when each user's screen showed it; and, when the
//! run failed, a red marker with the property's name at the violation's
//! time and lane.
//!
//! Why a picture: a failure is usually a coincidence in time (a message
//! typed while a link was held, a crash between a write and its sync), and
//! an eye finds coincidences on a timeline faster than in a thousand lines
//! of text. The SVG is written by hand as text: it needs no dependency, and
//! the same run gives the same bytes. It stays legible for a full swarm run
//! (60 s active, 75 s quiet, six users and more) because lines are thin and
//! deliveries that land on the same pixels are drawn once.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use chat_core::session::Line;

use crate::oracle::{self, Verdict, Violation};
use crate::report;
use crate::scenario::FaultKind;
use crate::timeline::{self, Entry, Kind, Lane, Place};
use crate::world::Observations;

/// Where the lanes start, left of which are their names.
const LABEL_WIDTH: f64 = 180.0;
/// The width of the time axis, whatever the run's length.
const PLOT_WIDTH: f64 = 1800.0;
const RIGHT_MARGIN: f64 = 40.0;
const TITLE_HEIGHT: f64 = 64.0;
const LANE_HEIGHT: f64 = 58.0;
const LANE_GAP: f64 = 6.0;
/// A lane's fault strips: rows of this height from its top.
const STRIP_HEIGHT: f64 = 10.0;
/// The strip rows a lane has room for (more overlapping faults share the last).
const STRIP_ROWS: usize = 3;
/// Where a lane's bar (the host up, the user's client running) sits,
/// from the lane's top; messages start and end on it.
const BAR_OFFSET: f64 = 44.0;
const AXIS_HEIGHT: f64 = 36.0;
const LEGEND_ROW_HEIGHT: f64 = 18.0;
const LEGEND_COLUMNS: usize = 4;
/// A delivery later than this after its typing is drawn as late.
const LATE_AFTER: Duration = Duration::from_secs(1);
/// Violations marked on the lanes (all are listed below the legend, up to
/// [`VIOLATIONS_LISTED_MAX`]).
const VIOLATIONS_MARKED_MAX: usize = 8;
const VIOLATIONS_LISTED_MAX: usize = 10;
const VIOLATION_RED: &str = "#d00000";

/// The picture of a run, as SVG text.
pub fn picture(observations: &Observations, verdict: &Verdict, planted: Option<&str>) -> String {
    let layout = Layout::new(observations);
    let entries = timeline::entries(observations);
    let mut body = String::new();
    body.push_str(&title(observations, verdict, planted));
    body.push_str(&phases(observations, &layout));
    body.push_str(&lanes(observations, &layout));
    body.push_str(&bands(&entries, &layout));
    body.push_str(&bars(observations, &layout));
    body.push_str(&markers(&entries, &layout));
    body.push_str(&messages(observations, &layout));
    body.push_str(&violation_markers(observations, verdict, &layout));
    body.push_str(&axis(&layout));
    let (legend, legend_height) = legend(observations, verdict, &layout);
    body.push_str(&legend);
    let (listed, listed_height) = violation_list(verdict, &layout, legend_height);
    body.push_str(&listed);
    let height = layout.lanes_bottom() + AXIS_HEIGHT + legend_height + listed_height + 16.0;
    let width = LABEL_WIDTH + PLOT_WIDTH + RIGHT_MARGIN;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"DejaVu Sans, Verdana, sans-serif\" \
         font-size=\"11\">\n{}<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n",
        definitions()
    )
}

/// Positions on the picture.
struct Layout {
    lanes: Vec<Lane>,
    /// Pixels per simulated second.
    scale: f64,
    end: Duration,
}

impl Layout {
    fn new(observations: &Observations) -> Self {
        let end = observations.simulated.max(observations.scenario.end());
        Layout {
            lanes: timeline::lanes(&observations.scenario),
            scale: PLOT_WIDTH / end.as_secs_f64().max(1.0),
            end,
        }
    }

    fn x(&self, at: Duration) -> f64 {
        LABEL_WIDTH + at.min(self.end).as_secs_f64() * self.scale
    }

    fn top(&self, lane: Lane) -> f64 {
        let index = self
            .lanes
            .iter()
            .position(|held| *held == lane)
            .unwrap_or(0);
        TITLE_HEIGHT + index as f64 * (LANE_HEIGHT + LANE_GAP)
    }

    fn bar(&self, lane: Lane) -> f64 {
        self.top(lane) + BAR_OFFSET
    }

    fn lanes_bottom(&self) -> f64 {
        TITLE_HEIGHT + self.lanes.len() as f64 * (LANE_HEIGHT + LANE_GAP)
    }
}

/// Text made safe for XML.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            _ => escaped.push(character),
        }
    }
    escaped
}

fn definitions() -> String {
    "<defs>\n<pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
     patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#e6e6e6\"/>\
     <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#888\" stroke-width=\"2\"/></pattern>\n\
     </defs>\n"
        .to_owned()
}

/// The colour of a fault kind's bands.
fn colour(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::LatencySpike => "#f28e2b",
        FaultKind::Hold => "#e8c13a",
        FaultKind::Partition => "#9d5ba0",
        FaultKind::PartitionOneWay => "#c9a0dc",
        FaultKind::LinkFailure => "#9c755f",
        FaultKind::Crash => "#555555",
        FaultKind::StopReading => "#4aa39c",
        FaultKind::LateJoin => "#b0b0b0",
        FaultKind::ServerCrash => "#444444",
        FaultKind::DiskError => "#17a2c4",
        FaultKind::DiskFull => "#6ab04c",
    }
}

/// Whether a band's colour is light enough to need dark text.
fn light(colour: &str) -> bool {
    matches!(
        colour,
        "#e8c13a" | "#c9a0dc" | "#b0b0b0" | "#b5b82a" | "#6ab04c" | "#f28e2b"
    )
}

const EPISODE_COLOUR: &str = "#b5b82a";
const MESSAGE_COLOUR: &str = "#3a6ea5";
const LATE_COLOUR: &str = "#111111";

fn title(observations: &Observations, verdict: &Verdict, planted: Option<&str>) -> String {
    let scenario = &observations.scenario;
    let name = match &scenario.name {
        Some(name) => format!("scenario \u{201c}{name}\u{201d}"),
        None => format!("seed {}", scenario.seed),
    };
    let outcome = match verdict.earliest() {
        Some(earliest) => format!(
            "FAILED: {} ({} violation(s))",
            earliest.property,
            verdict.violations.len()
        ),
        None => format!("every property held ({} checks)", verdict.check_count()),
    };
    let planted = planted.map_or_else(String::new, |bug| format!(" \u{b7} planted bug: {bug}"));
    let colour = if verdict.violations.is_empty() {
        "#1b5e20"
    } else {
        VIOLATION_RED
    };
    format!(
        "<text x=\"16\" y=\"24\" font-size=\"17\" font-weight=\"bold\">{} \u{2014} \
         <tspan fill=\"{colour}\">{}</tspan>{}</text>\n\
         <text x=\"16\" y=\"44\" fill=\"#444\">{} users, {} adversaries; {:.0} s active, then \
         {:.0} s quiet. Time runs left to right in simulated seconds; each lane is a host.</text>\n",
        escape(&name),
        escape(&outcome),
        escape(&planted),
        scenario.clients.len(),
        scenario.adversaries.len(),
        scenario.active.as_secs_f64(),
        scenario.quiet.as_secs_f64(),
    ) + &format!(
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n",
        LABEL_WIDTH,
        TITLE_HEIGHT - 6.0,
        LABEL_WIDTH + PLOT_WIDTH,
        TITLE_HEIGHT - 6.0
    )
}

/// The quiet phase shaded, its start (the heal) marked, and a grid.
fn phases(observations: &Observations, layout: &Layout) -> String {
    let heal = layout.x(observations.scenario.heal_at());
    let (top, bottom) = (TITLE_HEIGHT - 6.0, layout.lanes_bottom());
    let mut text = format!(
        "<rect x=\"{heal:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#eef4fb\"/>\n",
        layout.x(layout.end) - heal,
        bottom - top
    );
    let mut second = 0;
    // Bounded: one line per ten seconds of the run.
    while Duration::from_secs(second) <= layout.end {
        let x = layout.x(Duration::from_secs(second));
        let _ = writeln!(
            text,
            "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#e4e4e4\"/>"
        );
        second += 10;
    }
    let _ = writeln!(
        text,
        "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\" font-size=\"10\">active phase: users type, \
         faults strike</text>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\" font-size=\"10\">quiet \
         phase: the network is healed, nobody types, everyone must catch up</text>",
        LABEL_WIDTH + 4.0,
        top - 2.0,
        heal + 4.0,
        top - 2.0
    );
    text
}

/// Each lane's background and name.
fn lanes(observations: &Observations, layout: &Layout) -> String {
    let scenario = &observations.scenario;
    let mut text = String::new();
    for (index, lane) in layout.lanes.iter().enumerate() {
        let top = layout.top(*lane);
        let host = timeline::host_of(scenario, *lane);
        let (name, detail) = match lane {
            Lane::Server => ("server".to_owned(), "the chat server".to_owned()),
            Lane::Client(client) => (host.to_owned(), lane_nicknames(observations, *client)),
            Lane::Adversary(_) => (host.to_owned(), "adversary (raw protocol)".to_owned()),
        };
        let fill = if index % 2 == 0 { "#fafafa" } else { "#f2f2f2" };
        let _ = writeln!(
            text,
            "<g class=\"lane\" data-host=\"{}\"><rect x=\"{LABEL_WIDTH:.1}\" y=\"{top:.1}\" \
             width=\"{PLOT_WIDTH:.1}\" height=\"{LANE_HEIGHT:.1}\" fill=\"{fill}\" \
             fill-opacity=\"0.6\"/><text x=\"12\" y=\"{:.1}\" font-weight=\"bold\">{}</text>\
             <text x=\"12\" y=\"{:.1}\" fill=\"#555\" font-size=\"10\">{}</text></g>",
            escape(host),
            top + 22.0,
            escape(&name),
            top + 36.0,
            escape(&report::shortened_to(&detail, 30))
        );
    }
    text
}

/// The nicknames a client host used, as its lane's second line.
fn lane_nicknames(observations: &Observations, client: usize) -> String {
    let mut nicks: Vec<&str> = Vec::new();
    for run in &observations.clients[client].runs {
        if !nicks.contains(&run.nick.as_str()) {
            nicks.push(&run.nick);
        }
    }
    match nicks.len() {
        0 => "its client never started".to_owned(),
        _ => format!("as {}", nicks.join(", ")),
    }
}

/// The lanes an entry's band covers, and the lane its strip is on.
fn band_lanes(entry: &Entry, layout: &Layout) -> (Vec<Lane>, Lane) {
    match entry.place {
        Place::Everyone => (layout.lanes.clone(), Lane::Server),
        Place::Lane(lane) => (vec![lane], lane),
    }
}

/// Where strips already are on one lane: per row, where its last band
/// and its last label end.
#[derive(Default)]
struct Rows {
    band_ends: Vec<f64>,
    label_ends: Vec<f64>,
}

/// Faults and episodes: a light tint over the lanes they struck, and a
/// labelled strip at the top of their lane, in the first free row.
fn bands(entries: &[Entry], layout: &Layout) -> String {
    let mut text = String::new();
    // Labels go on top of every strip, so a later strip hides none.
    let mut labels = String::new();
    let mut rows: BTreeMap<Lane, Rows> = BTreeMap::new();
    for entry in entries {
        let (colour, kind_name) = match entry.kind {
            Kind::Fault(kind) => (colour(kind), kind.name()),
            Kind::Episode => (EPISODE_COLOUR, "adversary episode"),
            Kind::ServerStarted | Kind::ServerStopped | Kind::Heal => continue,
        };
        let start = layout.x(entry.start);
        let width = (layout.x(entry.end(layout.end)) - start).max(3.0);
        let (covered, strip_lane) = band_lanes(entry, layout);
        text.push_str(&tints(
            entry,
            colour,
            (start, width),
            &covered,
            strip_lane,
            layout,
        ));
        let lane_rows = rows.entry(strip_lane).or_default();
        let row = free_row(&mut lane_rows.band_ends, start, start + width);
        let y = layout.top(strip_lane) + 1.0 + row as f64 * (STRIP_HEIGHT + 1.0);
        let _ = write!(
            text,
            "<rect class=\"band\" data-kind=\"{}\" x=\"{start:.1}\" y=\"{y:.1}\" \
             width=\"{width:.1}\" height=\"{STRIP_HEIGHT:.1}\" fill=\"{colour}\" \
             fill-opacity=\"0.85\"><title>{}</title></rect>",
            escape(kind_name),
            escape(&format!(
                "{:.3} s: {}",
                entry.start.as_secs_f64(),
                entry.what
            ))
        );
        if lane_rows.label_ends.len() <= row {
            lane_rows.label_ends.resize(row + 1, 0.0);
        }
        // A label is drawn only where no earlier label of its row is.
        if start >= lane_rows.label_ends[row] {
            let (label, label_end) = strip_label(&entry.label, colour, (start, y), width);
            labels.push_str(&label);
            lane_rows.label_ends[row] = label_end;
        }
        text.push('\n');
    }
    text + &labels + "\n"
}

/// The tint of a band over each lane it covers: a crashed host's own lane
/// hatched, every other lane lightly coloured.
fn tints(
    entry: &Entry,
    colour: &str,
    (start, width): (f64, f64),
    covered: &[Lane],
    strip_lane: Lane,
    layout: &Layout,
) -> String {
    let crash = matches!(
        entry.kind,
        Kind::Fault(FaultKind::Crash | FaultKind::ServerCrash)
    );
    let mut text = String::new();
    for lane in covered {
        let (tint, opacity) = match (crash, *lane == strip_lane) {
            (true, true) => ("url(#hatch)", 0.7),
            (true, false) => (colour, 0.12),
            (false, _) => (colour, 0.16),
        };
        let _ = writeln!(
            text,
            "<rect class=\"tint\" x=\"{start:.1}\" y=\"{:.1}\" width=\"{width:.1}\" \
             height=\"{LANE_HEIGHT:.1}\" fill=\"{tint}\" fill-opacity=\"{opacity}\"/>",
            layout.top(*lane)
        );
    }
    text
}

/// The first strip row free at `start` (rows past the last are shared).
fn free_row(ends: &mut Vec<f64>, start: f64, end: f64) -> usize {
    let row = ends
        .iter()
        .position(|taken| *taken + 2.0 <= start)
        .unwrap_or(ends.len())
        .min(STRIP_ROWS - 1);
    if row == ends.len() {
        ends.push(end);
    } else {
        ends[row] = ends[row].max(end);
    }
    row
}

/// A strip's label, if it fits (about 5 pixels a character at this
/// size), and where it ends.
fn strip_label(label: &str, colour: &str, (x, y): (f64, f64), width: f64) -> (String, f64) {
    let characters = ((width - 4.0) / 5.0).floor();
    if characters < 7.0 {
        return (String::new(), x);
    }
    let shown = report::shortened_to(label, characters as usize);
    let ink = if light(colour) { "#222" } else { "white" };
    let end = x + 4.0 + shown.chars().count() as f64 * 5.0;
    let text = format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"8.5\" fill=\"{ink}\">{}</text>",
        x + 2.0,
        y + STRIP_HEIGHT - 2.0,
        escape(&shown)
    );
    (text, end)
}

/// The bar of each lane: the server while up (down while crashed or
/// stopped), each run of a user's client while it ran.
fn bars(observations: &Observations, layout: &Layout) -> String {
    let mut text = String::new();
    let bar = |text: &mut String, lane: Lane, from: Duration, to: Duration, fill: &str| {
        let x = layout.x(from);
        let _ = writeln!(
            text,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"5\" \
             fill=\"{fill}\"/>",
            layout.bar(lane) - 2.5,
            (layout.x(to) - x).max(3.0)
        );
    };
    if let Some(first) = observations.server.lifetimes.first() {
        bar(
            &mut text,
            Lane::Server,
            first.started,
            layout.end,
            "#2e7d32",
        );
    }
    for (from, to) in timeline::server_down(observations) {
        bar(&mut text, Lane::Server, from, to, "#222222");
    }
    for (index, client) in observations.clients.iter().enumerate() {
        for (number, run) in client.runs.iter().enumerate() {
            let last = number + 1 == client.runs.len();
            let crashed = client.crashed_at.filter(|_| last);
            let end = run
                .outcome
                .map(|(at, _)| at)
                .or(crashed)
                .unwrap_or(layout.end);
            bar(&mut text, Lane::Client(index), run.started, end, "#6d7f99");
        }
    }
    text
}

/// The server's restarts and stops, and the heal, as marks (the server's
/// named under its bar where there is room).
fn markers(entries: &[Entry], layout: &Layout) -> String {
    let mut text = String::new();
    let mut label_end = 0.0;
    let y = layout.bar(Lane::Server);
    for entry in entries {
        let x = layout.x(entry.start);
        let title = escape(&format!(
            "{:.3} s: {}",
            entry.start.as_secs_f64(),
            entry.what
        ));
        let (path, fill, word) = match entry.kind {
            Kind::ServerStarted => (
                format!("M{x:.1},{:.1} l5,9 h-10 z", y - 14.0),
                "#2e7d32",
                "restarted",
            ),
            Kind::ServerStopped => (
                format!("M{x:.1},{:.1} l5,-9 h-10 z", y - 5.0),
                "#222",
                "stopped",
            ),
            Kind::Heal => {
                let _ = writeln!(
                    text,
                    "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#1565c0\" \
                     stroke-width=\"1.5\" stroke-dasharray=\"6,3\"><title>{title}</title></line>",
                    TITLE_HEIGHT - 6.0,
                    layout.lanes_bottom()
                );
                continue;
            }
            Kind::Fault(_) | Kind::Episode => continue,
        };
        let _ = writeln!(
            text,
            "<path class=\"mark\" d=\"{path}\" fill=\"{fill}\"><title>{title}</title></path>"
        );
        if x - 4.0 >= label_end {
            let _ = writeln!(
                text,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"8.5\" fill=\"{fill}\">{word}</text>",
                x - 4.0,
                y + 13.0
            );
            label_end = x - 4.0 + word.len() as f64 * 5.0 + 3.0;
        }
    }
    text
}

/// One delivery of a message: typed on one lane at one time, shown on
/// another at a later one.
struct Delivery {
    from: (Lane, Duration),
    to: (Lane, Duration),
}

/// Every message shown on a screen (room or private, not history), with
/// where and when it was typed: by its text among the lines users typed,
/// or, for an adversary's message, by its nickname.
fn deliveries(observations: &Observations) -> Vec<Delivery> {
    let mut typed: BTreeMap<&str, Vec<(Lane, Duration)>> = BTreeMap::new();
    for (index, client) in observations.clients.iter().enumerate() {
        for (at, line) in client.runs.iter().flat_map(|run| &run.typed) {
            if let Some(text) = oracle::typed_message(line) {
                typed
                    .entry(text)
                    .or_default()
                    .push((Lane::Client(index), *at));
            }
        }
    }
    let mut found = Vec::new();
    for (index, client) in observations.clients.iter().enumerate() {
        for (at, line) in client.runs.iter().flat_map(|run| &run.shown) {
            let (nick, text) = match line {
                Line::Message { nick, text, .. } => (nick, text),
                Line::Private {
                    from,
                    text,
                    outgoing: false,
                    ..
                } => (from, text),
                _ => continue,
            };
            let origin = typed
                .get(text.as_str())
                .and_then(|origins| origins.iter().rev().find(|(_, typed)| typed <= at))
                .copied()
                .or_else(|| adversary_origin(observations, nick, *at));
            if let Some(from) = origin {
                found.push(Delivery {
                    from,
                    to: (Lane::Client(index), *at),
                });
            }
        }
    }
    found
}

/// Where and when an adversary's message was written: its episode's last
/// send at or before `shown`.
fn adversary_origin(
    observations: &Observations,
    nick: &str,
    shown: Duration,
) -> Option<(Lane, Duration)> {
    let conversation = observations
        .adversaries
        .iter()
        .find(|conversation| conversation.nick == nick)?;
    let host = nick.rsplit_once('-')?.0;
    let lane = timeline::lane_of_host(&observations.scenario, host)?;
    let written = conversation
        .sent
        .iter()
        .filter(|(at, kind)| kind == "send" && *at <= shown)
        .map(|(at, _)| *at)
        .next_back()
        .or(conversation.connected)?;
    Some((lane, written))
}

/// Messages: a thin line per delivery (those on the same pixels once,
/// thicker), late ones dark; a tick where each was typed.
fn messages(observations: &Observations, layout: &Layout) -> String {
    let mut lines: BTreeMap<(i64, i64, i64, i64, bool), usize> = BTreeMap::new();
    let mut ticks: BTreeMap<(i64, i64), ()> = BTreeMap::new();
    let pixel = |value: f64| (value * 2.0).round() as i64;
    for delivery in deliveries(observations) {
        let (from_lane, typed) = delivery.from;
        let (to_lane, shown) = delivery.to;
        let (x1, y1) = (layout.x(typed), layout.bar(from_lane));
        ticks.insert((pixel(x1), pixel(y1)), ());
        if from_lane == to_lane {
            continue;
        }
        let (x2, y2) = (layout.x(shown), layout.bar(to_lane));
        let late = shown.saturating_sub(typed) > LATE_AFTER;
        *lines
            .entry((pixel(x1), pixel(y1), pixel(x2), pixel(y2), late))
            .or_insert(0) += 1;
    }
    let mut text = "<g class=\"messages\" stroke-linecap=\"round\">\n".to_owned();
    for ((x1, y1, x2, y2, late), count) in &lines {
        let (colour, opacity, width) = if *late {
            (LATE_COLOUR, 0.3, 0.6)
        } else {
            (MESSAGE_COLOUR, 0.35, 0.7)
        };
        let width = width * (1.0 + (*count as f64).ln());
        let _ = writeln!(
            text,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" \
             stroke-opacity=\"{opacity}\" stroke-width=\"{width:.2}\"/>",
            *x1 as f64 / 2.0,
            *y1 as f64 / 2.0,
            *x2 as f64 / 2.0,
            *y2 as f64 / 2.0
        );
    }
    for (x, y) in ticks.keys() {
        let (x, y) = (*x as f64 / 2.0, *y as f64 / 2.0);
        let _ = writeln!(
            text,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#1f3b5c\" \
             stroke-width=\"1\"/>",
            y - 7.0,
            y - 2.0
        );
    }
    text.push_str("</g>\n");
    text
}

/// Each violation's lane and time (its run's end, if it has none).
fn violation_place(
    observations: &Observations,
    violation: &Violation,
    end: Duration,
) -> (Lane, Duration) {
    let lane = violation.client.as_deref().map_or(Lane::Server, |party| {
        report::lane_of_party(observations, party)
    });
    (lane, violation.at.unwrap_or(end))
}

/// For the earliest violation of each property, a red ring on its lane, a
/// red line down it, and the property's name; the earliest violation's
/// time also as a dashed line across every lane.
fn violation_markers(observations: &Observations, verdict: &Verdict, layout: &Layout) -> String {
    let mut text = String::new();
    if let Some(earliest) = verdict.earliest() {
        let (_, at) = violation_place(observations, earliest, layout.end);
        let x = layout.x(at);
        let _ = writeln!(
            text,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{VIOLATION_RED}\" \
             stroke-width=\"1\" stroke-dasharray=\"3,3\"/>",
            TITLE_HEIGHT - 6.0,
            layout.lanes_bottom()
        );
    }
    let mut labels: Vec<(Lane, usize, f64, f64)> = Vec::new();
    let earliest = verdict.earliest_per_property();
    for violation in earliest.into_iter().take(VIOLATIONS_MARKED_MAX) {
        let (lane, at) = violation_place(observations, violation, layout.end);
        let x = layout.x(at);
        let label = format!("\u{2717} {}", violation.property);
        let width = label.chars().count() as f64 * 7.6 + 10.0;
        // Near the right edge the label goes to the left of the marker.
        let left = if x + 8.0 + width > LABEL_WIDTH + PLOT_WIDTH {
            x - width - 8.0
        } else {
            x + 8.0
        };
        let overlaps = |row: usize| {
            labels.iter().any(|(held, taken, start, end)| {
                *held == lane && *taken == row && left < *end + 2.0 && *start < left + width + 2.0
            })
        };
        let row = (0..VIOLATION_LABEL_ROWS).find(|row| !overlaps(*row));
        if let Some(row) = row {
            labels.push((lane, row, left, left + width));
        }
        let label = row.map(|row| (label, left, width, row));
        text.push_str(&violation_marker(violation, (lane, x), label, layout));
    }
    text
}

/// Rows of violation labels a lane has room for.
const VIOLATION_LABEL_ROWS: usize = 4;

/// One violation's marker, with its label (text, left, width, row) if it
/// found room.
fn violation_marker(
    violation: &Violation,
    (lane, x): (Lane, f64),
    label: Option<(String, f64, f64, usize)>,
    layout: &Layout,
) -> String {
    let (top, bar) = (layout.top(lane), layout.bar(lane));
    let mut text = format!(
        "<g class=\"violation\" data-property=\"{}\"><title>{}</title>\
         <line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" \
         stroke=\"{VIOLATION_RED}\" stroke-width=\"2.5\"/>\
         <circle cx=\"{x:.1}\" cy=\"{bar:.1}\" r=\"6\" fill=\"none\" stroke=\"{VIOLATION_RED}\" \
         stroke-width=\"2.5\"/>",
        violation.property,
        escape(&violation.to_string()),
        top + LANE_HEIGHT,
    );
    if let Some((label, left, width, row)) = label {
        let baseline = top + 12.0 + row as f64 * 13.0;
        let _ = write!(
            text,
            "<rect x=\"{left:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"13\" fill=\"white\" \
             fill-opacity=\"0.9\" stroke=\"{VIOLATION_RED}\"/><text x=\"{:.1}\" y=\"{baseline:.1}\" \
             fill=\"{VIOLATION_RED}\" font-weight=\"bold\">{}</text>",
            baseline - 10.5,
            left + 4.0,
            escape(&label)
        );
    }
    text.push_str("</g>\n");
    text
}

/// The time axis under the lanes: a tick every 5 s, a number every 10 s.
fn axis(layout: &Layout) -> String {
    let y = layout.lanes_bottom();
    let mut text = format!(
        "<line x1=\"{LABEL_WIDTH:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#333\"/>\n",
        LABEL_WIDTH + PLOT_WIDTH
    );
    let mut second = 0;
    // Bounded: one tick per five seconds of the run.
    while Duration::from_secs(second) <= layout.end {
        let x = layout.x(Duration::from_secs(second));
        let length = if second % 10 == 0 { 6.0 } else { 3.0 };
        let _ = writeln!(
            text,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>",
            y + length
        );
        if second % 10 == 0 {
            let _ = writeln!(
                text,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{second} s</text>",
                y + 18.0
            );
        }
        second += 5;
    }
    text
}

/// One item of the legend: how it looks, and what it means.
enum Swatch {
    Band(&'static str),
    Hatch,
    Bar(&'static str),
    Line(&'static str, f64),
    Tick,
    Triangle,
    Dashed(&'static str),
    Violation,
}

fn legend_items(observations: &Observations) -> Vec<(Swatch, String)> {
    let mut items = vec![
        (
            Swatch::Bar("#6d7f99"),
            "a user's client running (one bar per run)".to_owned(),
        ),
        (Swatch::Bar("#2e7d32"), "the server up".to_owned()),
        (Swatch::Bar("#222222"), "the server down".to_owned()),
        (
            Swatch::Tick,
            "a message typed (on its sender's lane)".to_owned(),
        ),
        (
            Swatch::Line(MESSAGE_COLOUR, 0.8),
            "a message shown to a user within 1 s".to_owned(),
        ),
        (
            Swatch::Line(LATE_COLOUR, 0.8),
            "a message shown later (held, replayed, caught up)".to_owned(),
        ),
        (
            Swatch::Triangle,
            "the server starts again (recovery)".to_owned(),
        ),
        (
            Swatch::Dashed("#1565c0"),
            "the network heals: the quiet phase begins".to_owned(),
        ),
    ];
    let kinds: Vec<FaultKind> = observations.scenario.fault_counts.keys().copied().collect();
    for kind in kinds {
        let swatch = match kind {
            FaultKind::Crash | FaultKind::ServerCrash => Swatch::Hatch,
            _ => Swatch::Band(colour(kind)),
        };
        let place = match kind {
            FaultKind::ServerCrash | FaultKind::DiskError | FaultKind::DiskFull => {
                " (the server: every lane)"
            }
            _ => "",
        };
        items.push((swatch, format!("fault: {}{place}", kind.name())));
    }
    if !observations.scenario.adversaries.is_empty() {
        items.push((
            Swatch::Band(EPISODE_COLOUR),
            "an adversary's episode (one connection)".to_owned(),
        ));
    }
    items.push((
        Swatch::Violation,
        "a property violated, where and when (hover for details)".to_owned(),
    ));
    items
}

fn swatch(swatch: &Swatch, x: f64, y: f64) -> String {
    match swatch {
        Swatch::Band(fill) => format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"24\" height=\"10\" fill=\"{fill}\" fill-opacity=\"0.85\"/>",
            y - 9.0
        ),
        Swatch::Hatch => format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"24\" height=\"10\" fill=\"url(#hatch)\"/>",
            y - 9.0
        ),
        Swatch::Bar(fill) => format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"24\" height=\"4\" fill=\"{fill}\"/>",
            y - 6.0
        ),
        Swatch::Line(stroke, opacity) => format!(
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{stroke}\" \
             stroke-opacity=\"{opacity}\" stroke-width=\"1.2\"/>",
            y - 10.0,
            x + 24.0,
            y
        ),
        Swatch::Tick => format!(
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1f3b5c\"/>",
            x + 12.0,
            y - 10.0,
            x + 12.0,
            y - 4.0
        ),
        Swatch::Triangle => format!(
            "<path d=\"M{:.1},{:.1} l5,9 h-10 z\" fill=\"#2e7d32\"/>",
            x + 12.0,
            y - 10.0
        ),
        Swatch::Dashed(stroke) => format!(
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{stroke}\" \
             stroke-width=\"1.5\" stroke-dasharray=\"4,2\"/>",
            x + 12.0,
            y - 12.0,
            x + 12.0,
            y + 2.0
        ),
        Swatch::Violation => format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"none\" stroke=\"{VIOLATION_RED}\" \
             stroke-width=\"2.5\"/>",
            x + 12.0,
            y - 4.0
        ),
    }
}

/// The legend box under the axis; returns it and its height.
fn legend(observations: &Observations, verdict: &Verdict, layout: &Layout) -> (String, f64) {
    let mut items = legend_items(observations);
    if !verdict.violations.is_empty() {
        items.push((
            Swatch::Dashed(VIOLATION_RED),
            "the time of the earliest violation".to_owned(),
        ));
    }
    let rows = items.len().div_ceil(LEGEND_COLUMNS);
    let top = layout.lanes_bottom() + AXIS_HEIGHT;
    let height = 26.0 + rows as f64 * LEGEND_ROW_HEIGHT;
    let column_width = (PLOT_WIDTH + LABEL_WIDTH - 32.0) / LEGEND_COLUMNS as f64;
    let mut text = format!(
        "<g class=\"legend\"><rect x=\"16\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{height:.1}\" \
         fill=\"white\" stroke=\"#999\"/><text x=\"26\" y=\"{:.1}\" font-weight=\"bold\">Legend</text>\n",
        PLOT_WIDTH + LABEL_WIDTH - 16.0,
        top + 15.0
    );
    for (index, (kind, meaning)) in items.iter().enumerate() {
        let x = 26.0 + (index % LEGEND_COLUMNS) as f64 * column_width;
        let y = top + 34.0 + (index / LEGEND_COLUMNS) as f64 * LEGEND_ROW_HEIGHT;
        text.push_str(&swatch(kind, x, y));
        let _ = writeln!(
            text,
            "<text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            x + 32.0,
            escape(meaning)
        );
    }
    text.push_str("</g>\n");
    (text, height + 8.0)
}

/// The earliest violation of each property in words under the legend;
/// returns them and their height.
fn violation_list(verdict: &Verdict, layout: &Layout, legend_height: f64) -> (String, f64) {
    if verdict.violations.is_empty() {
        return (String::new(), 0.0);
    }
    let top = layout.lanes_bottom() + AXIS_HEIGHT + legend_height + 14.0;
    let earliest = verdict.earliest_per_property();
    let mut text = format!(
        "<text x=\"16\" y=\"{top:.1}\" font-weight=\"bold\" fill=\"{VIOLATION_RED}\">Violations: \
         {} in all; the earliest of each property broken, as the oracle reported it \
         (`sim seed` lists them all):</text>\n",
        verdict.violations.len()
    );
    let listed: Vec<&Violation> = earliest.into_iter().take(VIOLATIONS_LISTED_MAX).collect();
    for (number, violation) in listed.iter().enumerate() {
        let _ = writeln!(
            text,
            "<text x=\"24\" y=\"{:.1}\" font-size=\"10.5\">{}</text>",
            top + 16.0 * (number as f64 + 1.0),
            escape(&report::shortened_to(&violation.to_string(), 260))
        );
    }
    (text, 16.0 * (listed.len() as f64 + 1.0) + 8.0)
}

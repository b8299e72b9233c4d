//! How a line looks on this terminal: optional timestamps, and nicknames in
//! colour on a terminal only (never in pipes, and never with `NO_COLOR`
//! set, <https://no-color.org>). Without either, a line is exactly its
//! `Display` text, so the original program's screens stay byte for byte.

use std::io::IsTerminal;

use chat_core::session::Line;

/// ANSI colours for nicknames (no black, white or blue, which vanish on
/// common backgrounds).
const COLOURS: [u8; 6] = [31, 32, 33, 35, 36, 91];

/// How lines are rendered.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    colours: bool,
    timestamps: bool,
}

impl Style {
    /// Colours when standard output is a terminal and `NO_COLOR` is unset
    /// or empty; timestamps when asked for.
    pub fn for_stdout(timestamps: bool) -> Self {
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Self {
            colours: std::io::stdout().is_terminal() && !no_colour,
            timestamps,
        }
    }

    /// The line as shown.
    pub fn render(&self, line: &Line) -> String {
        let mut text = line.to_string();
        if self.colours
            && let Some((start, nick)) = nick_position(line)
        {
            text.replace_range(start..start + nick.len(), &paint(nick));
        }
        if self.timestamps && is_live_event(line) {
            let now = jiff::Zoned::now();
            text = format!("[{}] {text}", now.strftime("%H:%M"));
        }
        text
    }
}

/// Where the line's first nickname starts in its text, and the nickname.
fn nick_position(line: &Line) -> Option<(usize, &str)> {
    let tag = |tagged: bool, room: &str| if tagged { room.len() + 3 } else { 0 };
    match line {
        Line::Message {
            room,
            nick,
            action: false,
            tagged,
            ..
        }
        | Line::Joined {
            room, nick, tagged, ..
        }
        | Line::Left {
            room, nick, tagged, ..
        } => Some((tag(*tagged, room), nick)),
        Line::Message {
            room,
            nick,
            action: true,
            tagged,
            ..
        } => Some((tag(*tagged, room) + 2, nick)),
        Line::Renamed {
            room, from, tagged, ..
        } => Some((tag(*tagged, room), from)),
        Line::History { nick, action, .. } => Some((if *action { 4 } else { 2 }, nick)),
        Line::Private {
            from,
            outgoing: false,
            ..
        } => Some((1, from)),
        Line::Private {
            to, outgoing: true, ..
        } => Some((4, to)),
        _ => None,
    }
}

/// A nickname in its colour: the same colour every time, for everyone.
fn paint(nick: &str) -> String {
    let hash = nick.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    let colour = COLOURS[(hash % COLOURS.len() as u32) as usize];
    format!("\x1b[{colour}m{nick}\x1b[0m")
}

fn is_live_event(line: &Line) -> bool {
    matches!(
        line,
        Line::Message { .. }
            | Line::Joined { .. }
            | Line::Left { .. }
            | Line::Renamed { .. }
            | Line::Private { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tagged: bool, action: bool) -> Line {
        Line::Message {
            room: "dev".into(),
            nick: "Ann".into(),
            text: "hi".into(),
            action,
            seq: 1,
            tagged,
        }
    }

    #[test]
    fn without_colours_or_timestamps_a_line_is_its_text() {
        let plain = Style {
            colours: false,
            timestamps: false,
        };
        assert_eq!(plain.render(&message(false, false)), "Ann: hi");
    }

    #[test]
    fn colours_paint_only_the_nickname() {
        let colours = Style {
            colours: true,
            timestamps: false,
        };
        let painted = paint("Ann");
        assert_eq!(
            colours.render(&message(false, false)),
            format!("{painted}: hi")
        );
        assert_eq!(
            colours.render(&message(true, false)),
            format!("[dev] {painted}: hi")
        );
        assert_eq!(
            colours.render(&message(true, true)),
            format!("[dev] * {painted} hi")
        );
        assert_eq!(paint("Ann"), painted, "the same colour every time");
    }

    #[test]
    fn timestamps_go_before_live_events_only() {
        let stamped = Style {
            colours: false,
            timestamps: true,
        };
        let text = stamped.render(&message(false, false));
        assert!(
            text.starts_with('[')
                && text.ends_with("] Ann: hi")
                && text.len() == "[12:34] Ann: hi".len(),
            "{text}"
        );
        assert_eq!(
            stamped.render(&Line::Disconnecting),
            "Disconnecting from server..."
        );
    }
}

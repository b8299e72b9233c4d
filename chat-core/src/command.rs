//! What a typed line means: a message to the current room, or a command.
//!
//! Pure parsing, no state: `/join ROOM`, `/leave [ROOM]`, `/rooms`, `/who
//! [ROOM]`, `/nick NEW`, `/msg NICK text`, `/me action`, `/quit`, `/help`.
//! `.exit` works as in the original program. A line starting with `//`
//! sends the rest with one `/` (`//shrug` says `/shrug`), and an unknown
//! `/word` is never sent: a mistyped command must not become a message.

/// What a typed line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Say this in the current room.
    Say(String),
    /// Do this in the current room (`/me waves`).
    Me(String),
    /// Join (or switch to) a room.
    Join(String),
    /// Leave a room (the current one without an argument).
    Leave(Option<String>),
    /// List the rooms.
    Rooms,
    /// List a room's members (the current room's without an argument).
    Who(Option<String>),
    /// Change nickname.
    Nick(String),
    /// A private message.
    Msg {
        /// To whom.
        to: String,
        /// What.
        text: String,
    },
    /// Leave the chat (`/quit`, or `.exit` as in the original).
    Quit,
    /// Show the commands.
    Help,
    /// Nothing (a blank line).
    Nothing,
    /// A command used wrongly: how to use it.
    Usage(&'static str),
    /// An unknown `/word`.
    Unknown(String),
}

/// The lines `/help` shows.
pub const HELP: &[&str] = &[
    "Commands:",
    "  /join ROOM       join a room (or switch to one you are in); lines you type go there",
    "  /leave [ROOM]    leave a room (the current one without ROOM)",
    "  /rooms           list the rooms",
    "  /who [ROOM]      list who is in a room",
    "  /nick NEW        change your nickname",
    "  /msg NICK text   a private message, seen only by NICK and you",
    "  /me action       say what you do: * you action",
    "  /quit, .exit     leave the chat",
    "  //text           send a line that starts with /",
];

/// Parses a typed line.
pub fn parse(line: &str) -> Input {
    if line.trim() == ".exit" {
        return Input::Quit;
    }
    if line.trim().is_empty() {
        return Input::Nothing;
    }
    if let Some(rest) = line.strip_prefix("//") {
        return Input::Say(format!("/{rest}"));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Input::Say(line.to_owned());
    };
    let (word, rest) = match command.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (command, ""),
    };
    let argument = (!rest.is_empty()).then(|| rest.to_owned());
    match (word, argument) {
        ("join" | "j", Some(room)) if !room.contains(char::is_whitespace) => Input::Join(room),
        ("join" | "j", _) => Input::Usage("/join ROOM"),
        ("leave" | "part", None) => Input::Leave(None),
        ("leave" | "part", Some(room)) if !room.contains(char::is_whitespace) => {
            Input::Leave(Some(room))
        }
        ("leave" | "part", Some(_)) => Input::Usage("/leave [ROOM]"),
        ("rooms" | "list", None) => Input::Rooms,
        ("who" | "names", room) => Input::Who(room),
        ("nick", Some(nick)) if !nick.contains(char::is_whitespace) => Input::Nick(nick),
        ("nick", _) => Input::Usage("/nick NEW"),
        ("msg" | "query", Some(rest)) => match rest.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Input::Msg {
                to: to.to_owned(),
                text: text.trim_start().to_owned(),
            },
            _ => Input::Usage("/msg NICK text"),
        },
        ("msg" | "query", None) => Input::Usage("/msg NICK text"),
        ("me", Some(action)) => Input::Me(action),
        ("me", None) => Input::Usage("/me action"),
        ("quit" | "exit", _) => Input::Quit,
        ("help" | "?", _) => Input::Help,
        (word, _) => Input::Unknown(format!("/{word}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_messages() {
        assert_eq!(parse("Hello there"), Input::Say("Hello there".into()));
        assert_eq!(parse("  indented"), Input::Say("  indented".into()));
        assert_eq!(parse("   "), Input::Nothing);
        assert_eq!(parse(".exit"), Input::Quit);
        assert_eq!(parse(" .exit "), Input::Quit);
    }

    #[test]
    fn commands_are_parsed() {
        assert_eq!(parse("/join dev"), Input::Join("dev".into()));
        assert_eq!(parse("/join"), Input::Usage("/join ROOM"));
        assert_eq!(parse("/leave"), Input::Leave(None));
        assert_eq!(parse("/leave dev"), Input::Leave(Some("dev".into())));
        assert_eq!(parse("/rooms"), Input::Rooms);
        assert_eq!(parse("/who"), Input::Who(None));
        assert_eq!(parse("/who dev"), Input::Who(Some("dev".into())));
        assert_eq!(parse("/nick Josh"), Input::Nick("Josh".into()));
        assert_eq!(
            parse("/msg Joshua hi there"),
            Input::Msg {
                to: "Joshua".into(),
                text: "hi there".into()
            }
        );
        assert_eq!(parse("/msg Joshua"), Input::Usage("/msg NICK text"));
        assert_eq!(parse("/me waves"), Input::Me("waves".into()));
        assert_eq!(parse("/quit"), Input::Quit);
        assert_eq!(parse("/help"), Input::Help);
    }

    #[test]
    fn unknown_commands_are_never_messages_and_double_slashes_are() {
        assert_eq!(parse("/shrug"), Input::Unknown("/shrug".into()));
        assert_eq!(parse("/shrug now"), Input::Unknown("/shrug".into()));
        assert_eq!(parse("//shrug"), Input::Say("/shrug".into()));
        assert_eq!(parse("// spaced"), Input::Say("/ spaced".into()));
    }
}

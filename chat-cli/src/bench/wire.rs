//! Just enough of each protocol to join a room, send messages and recognise
//! delivered ones, as cheaply as possible: the load generator must read
//! millions of lines a second on the same two cores as the server.
//!
//! A benchmark message's text is `B <talker> <seq> <nanoseconds>`: who sent
//! it, its number, and when it was meant to be sent.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use chat_net::{Network, TokioNetwork, TokioReader, TokioWriter};
use memchr::memmem;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::servers::Dialect;

/// The room (ours) or channel (IRC) every member joins.
pub const ROOM: &str = "bench";

/// A delivered benchmark message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The talker's index.
    pub talker: u32,
    /// The message's number for that talker, from 0.
    pub seq: u32,
    /// When it was meant to be sent, in nanoseconds since the run began.
    pub sent_ns: u64,
}

/// The text of a benchmark message.
pub fn text(talker: u32, seq: u32, sent_ns: u64) -> String {
    format!("B {talker} {seq} {sent_ns}")
}

/// One line of protocol carrying `text` to the room.
pub fn message_line(dialect: Dialect, id: u64, text: &str) -> String {
    match dialect {
        Dialect::Chat => {
            format!("{{\"type\":\"send\",\"room\":\"{ROOM}\",\"id\":{id},\"text\":\"{text}\"}}\n")
        }
        Dialect::Irc => format!("PRIVMSG #{ROOM} :{text}\r\n"),
    }
}

/// A keep-alive line (ours; IRC servers ping us instead).
pub fn heartbeat_line(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Chat => Some("{\"type\":\"heartbeat\"}\n"),
        Dialect::Irc => None,
    }
}

/// What a line from the server means to the generator.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A benchmark message was delivered.
    Message(Delivered),
    /// The server pings; answer with this line.
    Ping(String),
    /// Anything else.
    Other,
}

fn number(field: Option<&[u8]>) -> Option<u64> {
    let field = field?;
    if field.is_empty() || field.len() > 20 {
        return None;
    }
    field.iter().try_fold(0u64, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u64::from(byte - b'0'))
    })
}

/// Parses `B <talker> <seq> <ns>` at the start of `text`.
fn parse_text(text: &[u8]) -> Option<Delivered> {
    let mut fields = text
        .strip_prefix(b"B ")?
        .split(|&byte| byte == b' ' || byte == b'"' || byte == b'\r');
    let talker = u32::try_from(number(fields.next())?).ok()?;
    let seq = u32::try_from(number(fields.next())?).ok()?;
    let sent_ns = number(fields.next())?;
    Some(Delivered {
        talker,
        seq,
        sent_ns,
    })
}

/// Classifies one line (without its newline).
pub fn parse(dialect: Dialect, line: &[u8]) -> Incoming {
    match dialect {
        Dialect::Chat => {
            if !line.starts_with(b"{\"type\":\"message\"") {
                return Incoming::Other;
            }
            let Some(start) = memmem::find(line, b"\"text\":\"") else {
                return Incoming::Other;
            };
            parse_text(&line[start + 8..]).map_or(Incoming::Other, Incoming::Message)
        }
        Dialect::Irc => {
            if let Some(token) = line.strip_prefix(b"PING ") {
                let token = String::from_utf8_lossy(token.strip_suffix(b"\r").unwrap_or(token));
                return Incoming::Ping(format!("PONG {token}\r\n"));
            }
            let Some(at) = memmem::find(line, b" PRIVMSG ") else {
                return Incoming::Other;
            };
            let Some(colon) = memmem::find(&line[at + 9..], b" :") else {
                return Incoming::Other;
            };
            parse_text(&line[at + 9 + colon + 2..]).map_or(Incoming::Other, Incoming::Message)
        }
    }
}

/// A member that has joined the room: its halves, with anything the
/// server sent during the join still buffered.
pub struct Member {
    /// Buffered reader of the server's lines.
    pub reader: BufReader<TokioReader>,
    /// Where to write.
    pub writer: TokioWriter,
}

/// How a member reaches the server: the network (plain TCP or TLS, both
/// through chat-net), the server's address and the protocol it speaks.
#[derive(Clone, Debug)]
pub struct Route {
    /// chat-net's real network, with a TLS client configuration or without.
    pub network: TokioNetwork,
    /// `host:port`.
    pub addr: String,
    /// What the server speaks.
    pub dialect: Dialect,
}

/// Connects and joins the room as `nick`, within `limit`.
pub async fn join(route: &Route, nick: &str, limit: Duration) -> Result<Member> {
    tokio::time::timeout(limit, join_unbounded(route, nick))
        .await
        .with_context(|| format!("{nick} did not join within {limit:?}"))?
}

async fn join_unbounded(route: &Route, nick: &str) -> Result<Member> {
    // chat-net's sockets (TCP_NODELAY set), no help from the receiving side
    // (no TCP_QUICKACK).
    let connection = route.network.connect(&route.addr).await?;
    let dialect = route.dialect;
    let mut writer = connection.writer;
    let mut reader = BufReader::with_capacity(64 * 1024, connection.reader);
    match dialect {
        Dialect::Chat => {
            let hello = format!(
                "{{\"type\":\"hello\",\"version\":2,\"nick\":\"{nick}\"}}\n{{\"type\":\"join\",\"room\":\"{ROOM}\"}}\n"
            );
            writer.write_all(hello.as_bytes()).await?;
            wait_line(
                &mut reader,
                |line| {
                    line.contains("\"type\":\"joined\"")
                        && line.contains(&format!("\"nick\":\"{nick}\""))
                },
                &mut writer,
                dialect,
            )
            .await?;
        }
        Dialect::Irc => {
            let register = format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n");
            writer.write_all(register.as_bytes()).await?;
            wait_line(
                &mut reader,
                |line| line.split(' ').nth(1) == Some("001"),
                &mut writer,
                dialect,
            )
            .await?;
            writer
                .write_all(format!("JOIN #{ROOM}\r\n").as_bytes())
                .await?;
            wait_line(
                &mut reader,
                |line| line.split(' ').nth(1) == Some("366"),
                &mut writer,
                dialect,
            )
            .await?;
        }
    }
    Ok(Member { reader, writer })
}

/// Connects, says hello as `nick` and waits for the welcome, within `limit`
/// (ours only): the server is up and serving. Returns the connection's
/// halves, so that the caller decides when it closes.
pub async fn greet(route: &Route, nick: &str, limit: Duration) -> Result<Member> {
    let greeting = async {
        let connection = route.network.connect(&route.addr).await?;
        let mut writer = connection.writer;
        let mut reader = BufReader::new(connection.reader);
        let hello = format!("{{\"type\":\"hello\",\"version\":2,\"nick\":\"{nick}\"}}\n");
        writer.write_all(hello.as_bytes()).await?;
        let welcome = |line: &str| line.starts_with("{\"type\":\"welcome\"");
        wait_line(&mut reader, welcome, &mut writer, route.dialect).await?;
        anyhow::Ok(Member { reader, writer })
    };
    tokio::time::timeout(limit, greeting)
        .await
        .with_context(|| format!("{nick} was not welcomed within {limit:?}"))?
}

/// Reads lines until one matches, answering pings; fails on an error reply.
async fn wait_line(
    reader: &mut BufReader<TokioReader>,
    wanted: impl Fn(&str) -> bool,
    writer: &mut TokioWriter,
    dialect: Dialect,
) -> Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            bail!("the server closed the connection while joining");
        }
        let trimmed = line.trim_end();
        if wanted(trimmed) {
            return Ok(());
        }
        if let Incoming::Ping(pong) = parse(dialect, trimmed.as_bytes()) {
            writer.write_all(pong.as_bytes()).await?;
        }
        if trimmed.contains("\"type\":\"error\"") || trimmed.starts_with("ERROR") {
            bail!("the server refused: {trimmed}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_message_lines_are_recognised() {
        let line =
            br#"{"type":"message","room":"bench","seq":7,"nick":"m3","text":"B 3 41 123456789"}"#;
        assert_eq!(
            parse(Dialect::Chat, line),
            Incoming::Message(Delivered {
                talker: 3,
                seq: 41,
                sent_ns: 123456789
            })
        );
        assert_eq!(
            parse(
                Dialect::Chat,
                br#"{"type":"ack","room":"bench","id":1,"seq":7}"#
            ),
            Incoming::Other
        );
        assert_eq!(
            parse(
                Dialect::Chat,
                br#"{"type":"message","room":"bench","seq":7,"nick":"x","text":"hi"}"#
            ),
            Incoming::Other
        );
    }

    #[test]
    fn irc_lines_are_recognised() {
        let line = b":m3!m3@127.0.0.1 PRIVMSG #bench :B 3 41 123456789\r";
        assert_eq!(
            parse(Dialect::Irc, line),
            Incoming::Message(Delivered {
                talker: 3,
                seq: 41,
                sent_ns: 123456789
            })
        );
        assert_eq!(
            parse(Dialect::Irc, b"PING :bench.ngircd"),
            Incoming::Ping("PONG :bench.ngircd\r\n".into())
        );
        assert_eq!(
            parse(Dialect::Irc, b":bench.ngircd 001 m3 :Welcome"),
            Incoming::Other
        );
    }

    #[test]
    fn what_we_send_is_what_we_recognise() {
        let sent = text(12, 345, 6789);
        let ours = message_line(Dialect::Chat, 1, &sent);
        assert!(ours.ends_with('\n'));
        let irc = message_line(Dialect::Irc, 1, &sent);
        let echoed = format!(":m12!m12@localhost {}", irc.trim_end());
        assert_eq!(
            parse(Dialect::Irc, echoed.as_bytes()),
            Incoming::Message(Delivered {
                talker: 12,
                seq: 345,
                sent_ns: 6789
            })
        );
    }
}

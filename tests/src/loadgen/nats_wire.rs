//! The NATS client protocol, as loadgen speaks it: the same text protocol over TCP (the
//! escalation engine) and over WebSocket frames (the agents).

/// One server operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Info,
    Ping,
    Pong,
    Ok,
    Err(String),
    Msg {
        subject: String,
        reply: Option<String>,
        payload: Vec<u8>,
    },
}

/// Buffers bytes as they come (a frame may hold several operations, an operation may span
/// frames) and cuts them into operations.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    pos: usize,
}

const MAX_LINE: usize = 64 * 1024;
const MAX_PAYLOAD: usize = 8 << 20;

impl Parser {
    pub fn feed(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete operation; `Ok(None)` if more bytes are needed.
    pub fn next_op(&mut self) -> Result<Option<Op>, String> {
        let rest = &self.buf[self.pos..];
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            if rest.len() > MAX_LINE {
                return Err("protocol line too long".into());
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| "line not UTF-8")?;
        let mut parts = line.split_ascii_whitespace();
        let verb = parts.next().unwrap_or_default().to_ascii_uppercase();
        let op = match verb.as_str() {
            "MSG" => {
                let args: Vec<&str> = parts.collect();
                let (subject, reply, len) = match args.as_slice() {
                    [s, _sid, n] => (*s, None, *n),
                    [s, _sid, r, n] => (*s, Some(*r), *n),
                    _ => return Err(format!("bad MSG line {line:?}")),
                };
                let len: usize = len.parse().map_err(|_| format!("bad MSG size {line:?}"))?;
                if len > MAX_PAYLOAD {
                    return Err("payload too large".into());
                }
                let need = eol + 2 + len + 2;
                if rest.len() < need {
                    return Ok(None);
                }
                let op = Op::Msg {
                    subject: subject.to_owned(),
                    reply: reply.map(str::to_owned),
                    payload: rest[eol + 2..eol + 2 + len].to_vec(),
                };
                self.pos += need;
                return Ok(Some(op));
            }
            "PING" => Op::Ping,
            "PONG" => Op::Pong,
            "INFO" => Op::Info,
            "+OK" => Op::Ok,
            "-ERR" => Op::Err(line[4..].trim().to_owned()),
            "" => {
                self.pos += eol + 2;
                return self.next_op();
            }
            _ => return Err(format!("unknown operation {line:?}")),
        };
        self.pos += eol + 2;
        Ok(Some(op))
    }
}

/// `PUB subject [reply] n\r\npayload\r\n`.
pub fn publish(out: &mut Vec<u8>, subject: &str, reply: Option<&str>, payload: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject.as_bytes());
    if let Some(r) = reply {
        out.push(b' ');
        out.extend_from_slice(r.as_bytes());
    }
    out.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// What an agent says first.
pub const CONNECT: &str = "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_and_joined_operations() {
        let mut p = Parser::default();
        p.feed(b"INFO {\"server_id\":\"x\"}\r\nPING\r\nMSG tickets.en 1 _INBOX.a.1.1 5\r\nhel");
        assert_eq!(p.next_op(), Ok(Some(Op::Info)));
        assert_eq!(p.next_op(), Ok(Some(Op::Ping)));
        assert_eq!(p.next_op(), Ok(None));
        p.feed(b"lo\r\nMSG a 2 3\r\nabc\r\n-ERR 'x'\r\n");
        assert_eq!(
            p.next_op(),
            Ok(Some(Op::Msg {
                subject: "tickets.en".into(),
                reply: Some("_INBOX.a.1.1".into()),
                payload: b"hello".to_vec()
            }))
        );
        assert_eq!(
            p.next_op(),
            Ok(Some(Op::Msg {
                subject: "a".into(),
                reply: None,
                payload: b"abc".to_vec()
            }))
        );
        assert_eq!(p.next_op(), Ok(Some(Op::Err("'x'".into()))));
        assert_eq!(p.next_op(), Ok(None));
    }

    #[test]
    fn publishes() {
        let mut out = Vec::new();
        publish(&mut out, "s", Some("r"), b"xy");
        assert_eq!(out, b"PUB s r 2\r\nxy\r\n");
    }
}

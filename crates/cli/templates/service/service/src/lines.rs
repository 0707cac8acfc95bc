//! The service's line protocol: bytes from a connection are cut into lines, and every line
//! gets one reply. Change [`reply`] to speak your own protocol.

/// A line longer than this ends the connection.
pub const MAX_LINE: usize = 64 * 1024;

/// The reply to one line (without its line ending): the line itself, like an echo server.
pub fn reply(line: &str) -> String {
    format!("{line}\n")
}

/// Collects the bytes of one connection and hands out complete lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Adds `bytes` and returns the lines they complete, without `\n` or `\r\n`; invalid
    /// UTF-8 is replaced. Fails once a line grows past [`MAX_LINE`].
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        if self.pending.len() > MAX_LINE {
            return Err(format!("line longer than {MAX_LINE} bytes"));
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_where_the_newlines_are() {
        let mut buffer = LineBuffer::default();
        assert_eq!(buffer.push(b"hel").unwrap(), Vec::<String>::new());
        assert_eq!(buffer.push(b"lo\nwor").unwrap(), ["hello"]);
        assert_eq!(buffer.push(b"ld\r\n\n").unwrap(), ["world", ""]);
    }

    #[test]
    fn a_line_without_end_is_refused() {
        let mut buffer = LineBuffer::default();
        assert!(buffer.push(&vec![b'x'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn every_line_is_echoed() {
        assert_eq!(reply("ping"), "ping\n");
    }
}

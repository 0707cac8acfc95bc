//! The cache's commands, one per line, each answered with one line:
//!
//! | command | reply |
//! |---|---|
//! | `SET key value` | `OK` (the value is the rest of the line) |
//! | `GET key` | `VALUE value`, or `NIL` |
//! | `INCR key` | `INT n` (a missing key counts as 0) |
//! | `DEL key` | `INT 1` if it existed, else `INT 0` |
//! | anything else | `ERR ...` |

use std::collections::HashMap;

/// A line longer than this ends the connection.
pub const MAX_LINE: usize = 64 * 1024;

/// The data, kept as long as the service runs.
#[derive(Debug, Default)]
pub struct Store {
    entries: HashMap<String, String>,
}

impl Store {
    /// Runs one command line and returns the reply line (without `\n`).
    pub fn execute(&mut self, line: &str) -> String {
        let mut words = line.splitn(3, ' ');
        let command = words.next().unwrap_or_default().to_ascii_uppercase();
        match (command.as_str(), words.next(), words.next()) {
            ("SET", Some(key), Some(value)) => {
                self.entries.insert(key.to_string(), value.to_string());
                "OK".to_string()
            }
            ("GET", Some(key), None) => match self.entries.get(key) {
                Some(value) => format!("VALUE {value}"),
                None => "NIL".to_string(),
            },
            ("INCR", Some(key), None) => {
                let current = self.entries.get(key).map_or(Ok(0), |v| v.parse::<i64>());
                match current.map(|n| n.checked_add(1)) {
                    Ok(Some(n)) => {
                        self.entries.insert(key.to_string(), n.to_string());
                        format!("INT {n}")
                    }
                    Ok(None) => "ERR overflow".to_string(),
                    Err(_) => "ERR not an integer".to_string(),
                }
            }
            ("DEL", Some(key), None) => {
                format!("INT {}", u8::from(self.entries.remove(key).is_some()))
            }
            _ => "ERR expected SET key value, GET key, INCR key or DEL key".to_string(),
        }
    }
}

/// Removes the complete lines from `pending` and returns them without `\n` or `\r\n`. Fails
/// once an unfinished line grows past [`MAX_LINE`].
pub fn take_lines(pending: &mut Vec<u8>) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let mut line: Vec<u8> = pending.drain(..=end).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        lines.push(String::from_utf8_lossy(&line).into_owned());
    }
    if pending.len() > MAX_LINE {
        return Err(format!("line longer than {MAX_LINE} bytes"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_del() {
        let mut store = Store::default();
        assert_eq!(store.execute("GET greeting"), "NIL");
        assert_eq!(store.execute("SET greeting hello there"), "OK");
        assert_eq!(store.execute("get greeting"), "VALUE hello there");
        assert_eq!(store.execute("DEL greeting"), "INT 1");
        assert_eq!(store.execute("DEL greeting"), "INT 0");
    }

    #[test]
    fn incr_counts_from_zero() {
        let mut store = Store::default();
        assert_eq!(store.execute("INCR hits"), "INT 1");
        assert_eq!(store.execute("INCR hits"), "INT 2");
        store.execute("SET name x");
        assert_eq!(store.execute("INCR name"), "ERR not an integer");
    }

    #[test]
    fn unknown_commands_are_errors() {
        assert!(Store::default().execute("FLY away").starts_with("ERR "));
    }

    #[test]
    fn lines_are_taken_whole() {
        let mut pending = b"GET a\r\nSET b".to_vec();
        assert_eq!(take_lines(&mut pending).unwrap(), ["GET a"]);
        assert_eq!(pending, b"SET b");
    }
}

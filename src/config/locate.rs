//! Maps a YAML path such as `routes[2].upstream` to the line and column where it is written.
//!
//! `serde_yaml` reports positions for syntax and type errors, but the checks that need the whole
//! document (duplicate names, references to pools that do not exist) run after deserialising,
//! when positions are gone. This index is built from the parser's events so those errors can
//! still name `file:line:column`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Position of a key (for mapping entries) or of the item (for sequence entries), 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default)]
pub struct PathIndex {
    positions: HashMap<String, Position>,
    /// Scalar values with their paths, to find which field of a mapping held a bad value.
    scalars: Vec<(String, String)>,
}

impl PathIndex {
    pub fn build(source: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(source);
        // A syntax error stops the walk; serde_yaml reports it with its own position.
        let _ = parser.load(&mut builder, false);
        PathIndex {
            positions: builder.positions,
            scalars: builder.scalars,
        }
    }

    /// The path of the field directly under `parent` whose scalar value is `value`.
    pub fn child_with_value(&self, parent: &str, value: &str) -> Option<String> {
        self.scalars
            .iter()
            .find(|(path, v)| {
                v == value
                    && path
                        .strip_prefix(parent)
                        .is_some_and(|rest| parent.is_empty() || rest.starts_with('.') || rest.starts_with('['))
            })
            .map(|(path, _)| path.clone())
    }

    pub fn contains(&self, path: &str) -> bool {
        self.positions.contains_key(path)
    }

    /// The position of `path`, or of its closest recorded ancestor.
    pub fn find(&self, path: &str) -> Position {
        let mut candidate = path;
        loop {
            if let Some(pos) = self.positions.get(candidate) {
                return *pos;
            }
            match candidate.rfind(['.', '[']) {
                Some(cut) => candidate = &candidate[..cut],
                None => return Position { line: 1, column: 1 },
            }
        }
    }
}

enum Frame {
    Map { path: String, pending_key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
    scalars: Vec<(String, String)>,
}

impl Builder {
    /// The path of the node that starts now, and whether it is a mapping key.
    fn next_node_path(&mut self) -> Option<(String, bool)> {
        match self.stack.last_mut() {
            None => Some((String::new(), false)),
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                None => None,
                Some(key) => Some((join(path, &key), false)),
            },
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some((p, false))
            }
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        self.positions.entry(path.to_string()).or_insert(Position {
            line: mark.line(),
            column: mark.col() + 1,
        });
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                // A scalar in key position of a mapping becomes the pending key.
                if let Some(Frame::Map { path, pending_key }) = self.stack.last_mut() {
                    if pending_key.is_none() {
                        let full = join(path, &value);
                        *pending_key = Some(value);
                        self.record(&full, mark);
                        return;
                    }
                }
                if let Some((path, _)) = self.next_node_path() {
                    self.record(&path, mark);
                    self.scalars.push((path, value));
                }
            }
            Event::MappingStart(..) => {
                let path = self.next_node_path().map(|(p, _)| p).unwrap_or_default();
                self.record(&path, mark);
                self.stack.push(Frame::Map {
                    path,
                    pending_key: None,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.next_node_path().map(|(p, _)| p).unwrap_or_default();
                self.record(&path, mark);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                let _ = self.next_node_path();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_sequence_items() {
        let src = "routes:\n  - name: a\n    upstream: x\n  - name: b\n    upstream: y\nupstreams: []\n";
        let idx = PathIndex::build(src);
        assert_eq!(idx.find("routes[1].upstream"), Position { line: 5, column: 5 });
        assert_eq!(idx.find("routes[0].name"), Position { line: 2, column: 5 });
        assert_eq!(idx.find("upstreams"), Position { line: 6, column: 1 });
        // Unknown leaf falls back to its parent.
        assert_eq!(idx.find("routes[1].nope"), idx.find("routes[1]"));
    }
}

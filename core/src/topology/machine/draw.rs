//! A declared machine drawn as text: its states, its refusals, then every transition with its
//! guard, the states it passes through, what it sets, emits and the timer it starts
//! (`hub topology describe`).

use std::fmt::Write as _;

use super::{MachineSpec, Value, NEW};

/// `spec` as lines of text, indented by `indent`.
pub fn text(spec: &MachineSpec, indent: &str) -> String {
    let mut out = String::new();
    let terminal: Vec<&str> = spec.terminal.iter().map(String::as_str).collect();
    let _ = writeln!(out, "{indent}states: {NEW} -> {} (terminal: {})", spec.states.join(", "), terminal.join(", "));
    for r in &spec.refusals {
        let from = if r.from.is_empty() { "any state".to_owned() } else { r.from.join(", ") };
        let guard = r.when.as_ref().map(|w| format!(" [{}]", one_line(&w.text))).unwrap_or_default();
        let kind = r.kind.as_ref().map(|k| format!(" (counted as {k})")).unwrap_or_default();
        let _ = writeln!(out, "{indent}refuses {}{guard} in {from}{kind}", r.on);
    }
    let width = spec.transitions.iter().map(|t| t.from.len()).max().unwrap_or(0);
    for t in &spec.transitions {
        let guard = t.when.as_ref().map(|w| format!(" [{}]", one_line(&w.text))).unwrap_or_default();
        let via: String = t.via.iter().map(|v| format!("{v} --> ")).collect();
        let _ = writeln!(out, "{indent}{:width$} --{}{guard}--> {via}{}", t.from, t.on, t.to);
        let pad = format!("{indent}{:width$}    ", "");
        if !t.set.is_empty() {
            let fields: Vec<&str> = t.set.iter().map(|(f, _)| f.as_str()).collect();
            let _ = writeln!(out, "{pad}sets {}", fields.join(", "));
        }
        for emit in &t.emits {
            let json: Vec<&str> =
                emit.fields.iter().filter(|(_, v)| matches!(v, Value::Json(_))).map(|(f, _)| f.as_str()).collect();
            let extra = if json.is_empty() { String::new() } else { format!(" (JSON {})", json.join(", ")) };
            let _ = writeln!(out, "{pad}emits {}{extra}", emit.contract);
        }
        if let Some(timer) = t.timer {
            let _ = writeln!(out, "{pad}timer {}", humantime::format_duration(timer));
        }
    }
    out
}

/// An expression written over several lines, on one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

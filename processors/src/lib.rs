//! Stateful processors (issue 4).

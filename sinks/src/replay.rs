//! `hub dlq list|replay`: read the dead-letter topic, filter, and re-publish.

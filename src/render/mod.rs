//! Formatting only: each output format is one peer file here, taking the report and a
//! writer (and, for text, whether to colour). Nothing here decides anything.

pub mod fold;
pub mod json;
pub mod junit;
pub mod ndjson;
pub mod prometheus;
pub mod text;

/// Whether text output is coloured: decided once by the caller, never process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    On,
    Off,
}

#[cfg(test)]
mod tests;

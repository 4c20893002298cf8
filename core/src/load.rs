//! Load calculation: how a pod turns its app's load, its CPU use and any custom signals into
//! the weighted load it publishes (SPEC §5).
//!
//! The default is SPEC's formula. A [`LoadCalculator`] of your own replaces it per server
//! driver. It is called once per publish (at start, on change, every period), on the library's
//! runtime threads; it must be quick and must not call back into the driver.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::Result;

/// What a load calculator sees.
#[derive(Debug, Clone, Copy)]
pub struct LoadInput<'a> {
    /// The load the app set with `set_load_state`.
    pub load: u32,
    /// This process's CPU use over the last period, percent of the machine (0–100); 0 when
    /// `cpu_factor` is 0 (sampling is off).
    pub cpu_percent: f64,
    /// The configured `cpu_factor`.
    pub cpu_factor: f64,
    /// Custom signals the app set with `ServerDriver::set_load_signal`.
    pub signals: &'a BTreeMap<String, f64>,
}

/// Computes the weighted load a pod publishes.
pub trait LoadCalculator: Send + Sync + fmt::Debug {
    /// The weighted load. An error is logged and the default formula is published instead
    /// (a pod must keep publishing, or it goes stale).
    fn weighted_load(&self, input: &LoadInput<'_>) -> Result<u32>;
}

/// SPEC §5: round(cpu_factor × cpu + (1 − cpu_factor) × load).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultLoadCalculator;

impl LoadCalculator for DefaultLoadCalculator {
    fn weighted_load(&self, input: &LoadInput<'_>) -> Result<u32> {
        Ok(default_weighted_load(
            input.cpu_factor,
            input.cpu_percent,
            input.load,
        ))
    }
}

/// SPEC §5's formula.
pub fn default_weighted_load(cpu_factor: f64, cpu_percent: f64, load: u32) -> u32 {
    let w = cpu_factor * cpu_percent + (1.0 - cpu_factor) * load as f64;
    w.round().clamp(0.0, u32::MAX as f64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula() {
        assert_eq!(default_weighted_load(0.0, 90.0, 150), 150);
        assert_eq!(default_weighted_load(1.0, 42.4, 150), 42);
        assert_eq!(default_weighted_load(0.7, 50.0, 100), 65);
    }
}

//! The frontend's own limits: what the administrator may lower (the C driver's
//! registry overrides, same names as the xenstore keys they cap).

/// Frontend limits and feature switches.
///
/// Each field is named after the key it caps; [`Settings::apply_override`] takes
/// the same names, so a Windows shell passes registry values through unchanged.
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent switches, one per feature key"
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `max-ring-page-order`: largest ring (2^order pages) to use.
    pub max_ring_page_order: u8,
    /// `multi-queue-max-queues`: most queues (rings) to use.
    pub max_queues: u16,
    /// `feature-max-indirect-segments`: most segments per indirect request
    /// (0: no indirect requests).
    pub max_indirect_segments: u32,
    /// `feature-persistent`: use persistent grants when the backend offers them.
    pub persistent: bool,
    /// `feature-flush-cache`: use cache flushes when offered.
    pub flush_cache: bool,
    /// `feature-barrier`: use write barriers when offered.
    pub barrier: bool,
    /// `feature-discard`: use discard when offered.
    pub discard: bool,
    /// Pages per queue in the persistent-grant (and bounce) pool.
    pub persistent_pool_pages: u32,
    /// Share of the guest's free grant references this device may claim at
    /// connect time, in percent (the rest stays for data grants and other
    /// devices).
    pub grant_budget_percent: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_ring_page_order: 4,
            max_queues: 8,
            max_indirect_segments: 256,
            persistent: true,
            flush_cache: true,
            barrier: true,
            discard: true,
            persistent_pool_pages: 512,
            grant_budget_percent: 50,
        }
    }
}

/// Largest ring order this frontend implements (blkif.h's
/// `XENBUS_MAX_RING_GRANT_ORDER`: 16 pages).
pub const MAX_RING_PAGE_ORDER: u8 = 4;

/// Why an override was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideError {
    /// No setting has that name.
    UnknownName,
    /// The value is out of range for the setting.
    OutOfRange,
}

impl Settings {
    /// Applies one administrator override by key name (`max-ring-page-order`,
    /// `multi-queue-max-queues`, `feature-max-indirect-segments`,
    /// `feature-persistent`, `feature-flush-cache`, `feature-barrier`,
    /// `feature-discard`, `persistent-pool-pages`, `grant-budget-percent`).
    /// Overrides can only lower limits below this frontend's own maxima.
    pub fn apply_override(&mut self, name: &str, value: u32) -> Result<(), OverrideError> {
        let flag = |v: u32| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(OverrideError::OutOfRange),
        };
        match name {
            "max-ring-page-order" => {
                self.max_ring_page_order = u8::try_from(value)
                    .ok()
                    .filter(|&o| o <= MAX_RING_PAGE_ORDER)
                    .ok_or(OverrideError::OutOfRange)?;
            }
            "multi-queue-max-queues" => {
                self.max_queues = u16::try_from(value)
                    .ok()
                    .filter(|&q| q >= 1)
                    .ok_or(OverrideError::OutOfRange)?;
            }
            "feature-max-indirect-segments" => {
                if value > 8 * 512 {
                    return Err(OverrideError::OutOfRange);
                }
                self.max_indirect_segments = value;
            }
            "feature-persistent" => self.persistent = flag(value)?,
            "feature-flush-cache" => self.flush_cache = flag(value)?,
            "feature-barrier" => self.barrier = flag(value)?,
            "feature-discard" => self.discard = flag(value)?,
            "persistent-pool-pages" => self.persistent_pool_pages = value,
            "grant-budget-percent" => {
                self.grant_budget_percent = u8::try_from(value)
                    .ok()
                    .filter(|&p| (1..=100).contains(&p))
                    .ok_or(OverrideError::OutOfRange)?;
            }
            _ => return Err(OverrideError::UnknownName),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_by_key_name() {
        let mut s = Settings::default();
        s.apply_override("max-ring-page-order", 0).unwrap();
        s.apply_override("multi-queue-max-queues", 1).unwrap();
        s.apply_override("feature-persistent", 0).unwrap();
        s.apply_override("feature-max-indirect-segments", 0)
            .unwrap();
        assert_eq!(s.max_ring_page_order, 0);
        assert_eq!(s.max_queues, 1);
        assert!(!s.persistent);
        assert_eq!(s.max_indirect_segments, 0);
        assert_eq!(
            s.apply_override("max-ring-page-order", 5),
            Err(OverrideError::OutOfRange)
        );
        assert_eq!(
            s.apply_override("multi-queue-max-queues", 0),
            Err(OverrideError::OutOfRange)
        );
        assert_eq!(
            s.apply_override("feature-discard", 2),
            Err(OverrideError::OutOfRange)
        );
        assert_eq!(s.apply_override("nope", 1), Err(OverrideError::UnknownName));
    }
}

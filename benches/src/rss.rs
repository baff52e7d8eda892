//! Resident memory of this process, read from `/proc/self/status`.

/// Current (`VmRSS`) and peak (`VmHWM`) resident set, in bytes; `None`
/// when `/proc` is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    /// Resident now.
    pub current: u64,
    /// Highest resident so far.
    pub peak: u64,
}

/// Reads this process's resident set.
pub fn read() -> Option<Rss> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
    };
    Some(Rss {
        current: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_plausible_resident_set_on_linux() {
        if let Some(r) = super::read() {
            assert!(r.current > 0 && r.peak >= r.current, "{r:?}");
        }
    }
}

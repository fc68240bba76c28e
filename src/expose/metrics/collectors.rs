//! Which per-token families `/metrics` writes: collectors, switched on and off as
//! node_exporter switches its own (`--collector.<name>`, `--no-collector.<name>`,
//! `--collector.disable-defaults`). Every series a token has costs the scraping Prometheus
//! memory for as long as it is retained, so a family that no shipped alert, dashboard panel
//! or status page reads is off by default; docs/metrics.md says which shipped alert or panel
//! needs which collector. The per-provider and exporter families are a few series in all and
//! always written.

/// A group of per-token families that is switched as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collector {
    Info,
    State,
    Expiry,
    Issued,
    LastUsed,
    Scope,
    Anomaly,
    FirstSeen,
    Rotated,
    Policy,
    LastProbe,
    LastVerdict,
    ProbeDuration,
    Threshold,
}

impl Collector {
    pub const ALL: [Collector; 14] = [
        Collector::Info,
        Collector::State,
        Collector::Expiry,
        Collector::Issued,
        Collector::LastUsed,
        Collector::Scope,
        Collector::Anomaly,
        Collector::FirstSeen,
        Collector::Rotated,
        Collector::Policy,
        Collector::LastProbe,
        Collector::LastVerdict,
        Collector::ProbeDuration,
        Collector::Threshold,
    ];

    /// The name in its flags: `--collector.<name>`.
    pub fn name(self) -> &'static str {
        self.flags().0
    }

    /// `(name, --collector.<name>, --no-collector.<name>)`, as `'static` text for the
    /// flag parser.
    pub fn flags(self) -> (&'static str, &'static str, &'static str) {
        macro_rules! f {
            ($n:literal) => {
                ($n, concat!("collector.", $n), concat!("no-collector.", $n))
            };
        }
        match self {
            Collector::Info => f!("info"),
            Collector::State => f!("state"),
            Collector::Expiry => f!("expiry"),
            Collector::Issued => f!("issued"),
            Collector::LastUsed => f!("last_used"),
            Collector::Scope => f!("scope"),
            Collector::Anomaly => f!("anomaly"),
            Collector::FirstSeen => f!("first_seen"),
            Collector::Rotated => f!("rotated"),
            Collector::Policy => f!("policy"),
            Collector::LastProbe => f!("last_probe"),
            Collector::LastVerdict => f!("last_verdict"),
            Collector::ProbeDuration => f!("probe_duration"),
            Collector::Threshold => f!("threshold"),
        }
    }

    /// Whether it is on unless a flag says otherwise: off where no shipped alert, panel or
    /// page reads it.
    pub fn default_enabled(self) -> bool {
        !matches!(
            self,
            Collector::Issued
                | Collector::LastUsed
                | Collector::FirstSeen
                | Collector::Rotated
                | Collector::LastProbe
                | Collector::ProbeDuration
        )
    }
}

/// The collectors switched on, a bit each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Collectors(u32);

impl Collectors {
    /// The default selection.
    pub fn defaults() -> Self {
        Collectors::of(Collector::ALL.into_iter().filter(|c| c.default_enabled()))
    }

    pub fn none() -> Self {
        Collectors(0)
    }

    pub fn all() -> Self {
        Collectors::of(Collector::ALL)
    }

    pub fn of(collectors: impl IntoIterator<Item = Collector>) -> Self {
        let mut set = Collectors::none();
        for c in collectors {
            set.set(c, true);
        }
        set
    }

    pub fn set(&mut self, c: Collector, on: bool) {
        if on {
            self.0 |= 1 << c as u32;
        } else {
            self.0 &= !(1 << c as u32);
        }
    }

    #[inline]
    pub fn has(self, c: Collector) -> bool {
        self.0 & (1 << c as u32) != 0
    }

    /// The names of the collectors switched on, for the log line at start.
    pub fn names(self) -> Vec<&'static str> {
        Collector::ALL
            .into_iter()
            .filter(|c| self.has(*c))
            .map(Collector::name)
            .collect()
    }
}

impl Default for Collectors {
    fn default() -> Self {
        Collectors::defaults()
    }
}

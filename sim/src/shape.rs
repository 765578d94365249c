//! Workload shapes: the knobs the generator turns, and the named shapes a sweep cycles
//! through.

/// The probabilities and ranges the generator draws from.
#[derive(Clone, Debug)]
pub struct Knobs {
    /// Repository identifiers.
    pub idents: (usize, usize),
    /// Remote servers.
    pub servers: (usize, usize),
    /// Throttle domains the servers spread over.
    pub domains: (usize, usize),
    /// State events per identifier.
    pub states: (usize, usize),
    /// A second owner co-hosts the repository (and lists the first as maintainer).
    pub co_host: f64,
    /// The owner lists a maintainer who publishes states too.
    pub maintainer: f64,
    /// A server has faults.
    pub flaky: f64,
    /// A state's objects are split over several servers.
    pub partial: f64,
    /// A state's objects exist nowhere (it expires unless pushed).
    pub nowhere: f64,
    /// Objects appear on their servers only some minutes after the state.
    pub late: f64,
    /// A maintainer pushes the state's data to us.
    pub push: f64,
    /// An identifier's events arrive by relay sync, in a burst.
    pub sync_origin: f64,
    /// Pull requests per identifier (probability of each of up to two).
    pub pr: f64,
    /// A state is deleted by its author later.
    pub delete: f64,
    /// The owner changes the maintainer list later.
    pub maint_change: f64,
    /// Restarts of our server.
    pub restarts: (usize, usize),
    /// An announcement lists a URL the engine must refuse (scheme, own domain).
    pub refused_url: f64,
    /// A server advertises an object it does not hold.
    pub liar: f64,
    /// Purgatory caps are small (a flood).
    pub small_limits: bool,
    /// Workload actions happen within this many minutes.
    pub horizon_min: u64,
}

/// A named workload shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    /// A few identifiers, mostly healthy servers, some pushes.
    Basic,
    /// Objects split over servers and appearing late.
    Partial,
    /// Flaky servers: outages, refusals, hangs, rate limits, garbage, lies.
    Faulty,
    /// Many identifiers on few domains, relay-sync bursts: the throttle at work.
    Busy,
    /// Restarts with downtime, short and longer than the expiry.
    Restarts,
    /// Co-hosted repositories, maintainer changes, deletions, pull requests.
    Governance,
    /// A flood against small purgatory caps.
    Flood,
}

impl Shape {
    /// Every shape, in sweep order.
    pub const ALL: [Shape; 7] = [
        Shape::Basic,
        Shape::Partial,
        Shape::Faulty,
        Shape::Busy,
        Shape::Restarts,
        Shape::Governance,
        Shape::Flood,
    ];

    /// The shape seed `seed` runs under in a mixed sweep.
    pub fn for_seed(seed: u64) -> Shape {
        Shape::ALL[(seed % Shape::ALL.len() as u64) as usize]
    }

    /// The knobs of this shape.
    pub fn knobs(self) -> Knobs {
        let base = Knobs {
            idents: (1, 3),
            servers: (2, 4),
            domains: (1, 3),
            states: (1, 2),
            co_host: 0.1,
            maintainer: 0.2,
            flaky: 0.1,
            partial: 0.2,
            nowhere: 0.1,
            late: 0.1,
            push: 0.3,
            sync_origin: 0.3,
            pr: 0.1,
            delete: 0.05,
            maint_change: 0.05,
            restarts: (0, 0),
            refused_url: 0.1,
            liar: 0.05,
            small_limits: false,
            horizon_min: 20,
        };
        match self {
            Shape::Basic => base,
            Shape::Partial => Knobs {
                servers: (3, 6),
                partial: 0.7,
                late: 0.5,
                push: 0.1,
                ..base
            },
            Shape::Faulty => Knobs {
                servers: (2, 5),
                flaky: 0.7,
                liar: 0.3,
                partial: 0.4,
                ..base
            },
            Shape::Busy => Knobs {
                idents: (8, 16),
                servers: (3, 6),
                domains: (1, 2),
                sync_origin: 0.8,
                push: 0.1,
                nowhere: 0.3,
                horizon_min: 10,
                ..base
            },
            Shape::Restarts => Knobs {
                restarts: (1, 3),
                nowhere: 0.2,
                late: 0.3,
                pr: 0.2,
                ..base
            },
            Shape::Governance => Knobs {
                states: (1, 3),
                co_host: 0.6,
                maintainer: 0.7,
                pr: 0.5,
                delete: 0.25,
                maint_change: 0.4,
                ..base
            },
            Shape::Flood => Knobs {
                idents: (10, 20),
                states: (1, 3),
                servers: (1, 3),
                domains: (1, 1),
                nowhere: 0.8,
                push: 0.0,
                pr: 0.6,
                small_limits: true,
                horizon_min: 5,
                ..base
            },
        }
    }
}

"""Demo data behind `ombaro seed --demo`: a realistic, deterministic Indian spa marketplace.

Everything is built in memory first (so aggregates such as ratings, customer totals and
booking numbers agree with the rows they summarise), then inserted table by table in
batches with Core `insert(table)` executemany. The caller owns the transaction: nothing
here commits.

Determinism: every section draws from its own `random.Random(f"{seed}:{section}")`, ids
are `UUID(int=rng.getrandbits(128))` and every timestamp is derived from `today`, so the
same (seed, today, scale) always yields identical rows, and changing one section does not
shift the random stream of the others.

Time: business dates and clock times (booking_date/booking_time, operating hours, shifts)
are in the platform zone (Asia/Kolkata); timestamps are timezone-aware UTC. The data set
behaves as if it was taken at 23:00 IST on `today` (`_Builder.anchor`): bookings on
`today` and before are history (completed or cancelled), the next two days are upcoming.
"""

from devtools.demo.logins import DEMO_PASSWORD, enable_demo_logins
from devtools.demo.reference import PLATFORM_ZONE
from devtools.demo.seed import build_demo, seed_demo

__all__ = ["DEMO_PASSWORD", "PLATFORM_ZONE", "build_demo", "enable_demo_logins", "seed_demo"]

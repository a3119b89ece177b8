"""Development tooling, not the engine: the embedded PostgreSQL and Redis that `make run` and
`make test` start under ./var (`embedded_services`), and the deterministic demo data set
(`demo`). The `ombaro` command reaches them through `ombaro services` and `ombaro seed --demo`;
nothing in `ombaro/`, `web/`, `workers/` or `beat/` imports this package."""

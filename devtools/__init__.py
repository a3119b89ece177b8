"""Development tooling, not the engine: the embedded PostgreSQL and Redis that `make run` and
`make test` start under ./var (`embedded_services`), and the deterministic demo data set
(`demo`). The `ombaro` command reaches them through `ombaro services` and `ombaro seed --demo`
(`cli/`, the only importer outside tests and benchmarks); the engine itself (`ombaro/`,
`web/`, `workers/`, `beat/`, `migrations/`) never imports this package
(`tests/devtools/test_boundary.py`, and the `devtools` contract in `.importlinter`)."""

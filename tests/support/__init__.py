"""What the tests (and the benches) are built from: the service as tests drive it
(`service`: config, credentials, payloads, the in-process API client), `servers` (a real
`remediator serve` process), `postgres` (a PostgreSQL started from the Debian binaries),
`terraform_repo` (a git repository of terraform workdirs), `platforms` (each platform's
documented samples, signed), `contracts` (the published API descriptions the stand-ins
check against), `history` (made-up execution history), `loopback` (a server on 127.0.0.1),
and `standins/`, the platforms and engines the service talks to."""

"""Step kinds: what a runbook's steps can do. `base` is the protocol every kind
implements (its spec, where a payload may go in it, the executor that runs it);
`registry` lists the kinds (adding one is its module and a line there). Local kinds run a
child process on this host (`ansible`, `terraform`); remote kinds start work on an engine
and follow it by handle (`awx`, `terraform_cloud`, `pipeline`)."""

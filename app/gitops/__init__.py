"""The git write-back: versions of a directory in git (`previous`, `last_good`, a
revision), a revert proposed as a branch (`propose`), the pull or merge request opened on
a code host (`code_host`, one module per host, registered in `code_hosts`), and the
proposer with its drift watch (`proposer`). Used by the terraform step kind; what it keeps
in the store is reached through `records.Records`."""

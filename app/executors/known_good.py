"""`revert_to: last_good`: the newest version recorded as applied and healthy for a
target (a terraform workdir, an HCP Terraform workspace), read from the store."""

from __future__ import annotations

from app.executors.git_versions import GoodVersion, LastGoodLookup
from app.store.db import Database
from app.store.versions import good_versions


def last_good_lookup(db: Database) -> LastGoodLookup:
    def lookup(target: str) -> GoodVersion | None:
        with db.read() as session:
            newest = good_versions(session=session, workdir=target, limit=1)
        if not newest:
            return None
        return GoodVersion(newest[0].commit, newest[0].recorded_by, newest[0].recorded_at)

    return lookup

"""The typed parts of runbook text that a payload may fill, and how: durations, paths
inside a directory, templates rendered in a sandbox, and the sinks that check or escape a
payload value for the one place it goes (an inventory name, a URL path segment, chat or
markdown text). The security model's "in one place" is here."""

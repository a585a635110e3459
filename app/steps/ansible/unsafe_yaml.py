"""Extra vars written for Ansible as YAML with every string tagged `!unsafe`.

Ansible templates extra-vars itself (with an unsandboxed Jinja); a value tagged `!unsafe`
is never templated, so a payload value such as `{{ lookup('pipe', 'id') }}` arrives as that
text, never evaluated. Keys are written as plain names.
"""

from __future__ import annotations

from typing import Any

import yaml


class _UnsafeDumper(yaml.SafeDumper):
    """Dumps every string value as `!unsafe`, keys as plain names."""


def _unsafe_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", value)


def _plain_keys(dumper: yaml.SafeDumper, value: dict[Any, Any]) -> yaml.Node:
    pairs = [(dumper.represent_str(str(k)), dumper.represent_data(v)) for k, v in value.items()]
    return yaml.MappingNode("tag:yaml.org,2002:map", pairs)


_UnsafeDumper.add_representer(str, _unsafe_str)
_UnsafeDumper.add_representer(dict, _plain_keys)


def unsafe_yaml(extra_vars: dict[str, Any]) -> str:
    return yaml.dump(extra_vars, Dumper=_UnsafeDumper, allow_unicode=True)

"""The policy (README.md, "The policy"): frozen values, loaded and validated once from TOML.

The names the rest of the package uses are re-exported here. The modules: ``model`` (the values and
the pure parsers), ``reader`` (typed values out of TOML tables, problems at their lines), ``load``
(building and validating a policy from its file), ``snapshot`` (a validated policy kept as JSON),
``lint`` (warnings about what a policy leaves open), ``check`` (the policy with its keyring folder),
and for ``stepup-git keys``: ``keyfiles`` (what a key file holds), ``edit`` (changing ``[[keys]]``
tables and keeping the rest of the text) and ``keys`` (list, add, remove).
"""

from .lint import REPLACE_WARNING
from .load import configured_policy_path, load, load_with_warnings
from .model import (
    ACTIONS,
    DEFAULT_PUSHER_ENV,
    DEFAULT_TIERS,
    MODES,
    PROOF_KINDS,
    REQUIRES,
    SSH_KEY_TYPES,
    Key,
    Policy,
    Rule,
    Settings,
    normalize_fingerprint,
    parse_duration,
    parse_ssh_key,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_PUSHER_ENV",
    "DEFAULT_TIERS",
    "MODES",
    "PROOF_KINDS",
    "REPLACE_WARNING",
    "REQUIRES",
    "SSH_KEY_TYPES",
    "Key",
    "Policy",
    "Rule",
    "Settings",
    "configured_policy_path",
    "load",
    "load_with_warnings",
    "normalize_fingerprint",
    "parse_duration",
    "parse_ssh_key",
]

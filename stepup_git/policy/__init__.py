"""The policy (SPEC §3): frozen values, loaded and validated once from TOML.

The names other modules use are re-exported here; the submodules are ``model`` (the values and the
pure parsers), ``load`` (reading the TOML), ``snapshot`` (a validated policy kept as JSON), ``lint`` (the
warnings about what a policy leaves open), ``check`` (the policy with its keyring) and, for
``stepup-git keys``, ``keyfiles``, ``listing``, ``keys`` and ``edit``.
"""

from .lint import REPLACE_WARNING
from .load import load, load_with_warnings
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
    "load",
    "load_with_warnings",
    "normalize_fingerprint",
    "parse_duration",
    "parse_ssh_key",
]

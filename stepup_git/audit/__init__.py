"""The audit log (docs/semantics.md): :mod:`.log` appends hash-chained records, :mod:`.verify` checks
the chain, :mod:`.show` reads records for people."""

from .log import GENESIS, Record, append, canonical, record_hash
from .show import default_log, git_dir_of, parse_time, read, render_table, select
from .verify import Head, Verification, parse_head, verify

__all__ = ["GENESIS", "Head", "Record", "Verification", "append", "canonical", "default_log", "git_dir_of",
           "parse_head", "parse_time", "read", "record_hash", "render_table", "select", "verify"]

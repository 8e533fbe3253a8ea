"""The audit log (docs/semantics.md): :mod:`.log` appends hash-chained records, :mod:`.verify` checks
the chain, :mod:`.show` reads and selects records for people, :mod:`.table` shows them."""

from .log import GENESIS, Record, append, canonical, record_hash
from .show import SINCE_FORMS, default_log, git_dir_of, parse_since, parse_time, read, select
from .table import render_approvals, render_table
from .verify import Head, Verification, parse_head, verify

__all__ = ["GENESIS", "SINCE_FORMS", "Head", "Record", "Verification", "append", "canonical", "default_log",
           "git_dir_of", "parse_head", "parse_since", "parse_time", "read", "record_hash", "render_approvals",
           "render_table", "select", "verify"]

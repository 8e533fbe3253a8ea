#!/bin/sh
# stepup-git pre-receive launcher: judges every push by the policy in `git config stepup.policy`.
# `stepup-git install` writes this file into a repository with the interpreter of its virtualenv.
STEPUP_PYTHON='@PYTHON@'
case "$STEPUP_PYTHON" in
  @*) STEPUP_PYTHON="$(dirname "$0")/../.venv/bin/python" ;;  # run from a source checkout
esac
exec "$STEPUP_PYTHON" -m stepup_git.hook "$@"

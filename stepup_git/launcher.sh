#!/bin/sh
# stepup-git hook launcher: runs the stepup-git package's hook entry for the hook it is installed as
# (pre-receive: judge every push by the policy in `git config stepup.policy`; pre-push: predict it).
# `stepup-git install` writes this file into a repository with the interpreter of its virtualenv.
STEPUP_PYTHON='@PYTHON@'
case "$STEPUP_PYTHON" in
  @*) STEPUP_PYTHON="$(dirname "$0")/../.venv/bin/python" ;;  # run from a source checkout
esac
# -I: the interpreter ignores PYTHON* variables and the user site, whatever environment the server gives
exec "$STEPUP_PYTHON" -I -m stepup_git.hook "$0" "$@"

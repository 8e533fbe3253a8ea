#!/bin/sh
# stepup-git hook launcher: runs the stepup-git package's @HOOK@ hook (pre-receive: judge every push by
# the policy in `git config stepup.policy`; pre-push: predict the server's verdict).
# `stepup-git install` writes this file into a repository with the interpreter of its virtualenv.
STEPUP_PYTHON='@PYTHON@'
case "$STEPUP_PYTHON" in
  @*) STEPUP_PYTHON="$(dirname "$0")/../.venv/bin/python" ;;  # run from a source checkout
esac
if [ ! -x "$STEPUP_PYTHON" ]; then
  echo "stepup-git: the hook's Python interpreter $STEPUP_PYTHON is missing or not executable; reinstall stepup-git, then run stepup-git install again for this repository" >&2
  exit 1
fi
# -I: the interpreter ignores PYTHON* variables and the user site, whatever environment the server gives
exec "$STEPUP_PYTHON" -I -m stepup_git hook --hook-type @HOOK@ "$0" "$@"

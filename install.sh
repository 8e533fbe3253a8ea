#!/usr/bin/env bash
# Install stepup-git: the system tools it needs, a virtual environment with the package, and
# optionally the hook into repositories.
#
#   ./install.sh                                              set up only
#   ./install.sh /srv/git/app.git --policy policies/example.toml [--mode audit] [--chain]
#   ./install.sh --demo                                       set up, then run the demo
#   ./install.sh --dev                                        also the test tools (used by tests/run)
#
# The virtual environment is .venv in this checkout unless STEPUP_VENV names another.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
venv=${STEPUP_VENV:-$here/.venv}
dev=0 demo=0
args=()
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --demo) demo=1 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done

say() { printf 'install.sh: %s\n' "$*" >&2; }

# 1. System tools: git, gpg and ssh-keygen (and, for the test suite, the servers it starts).
packages=() reasons=()
need() { packages+=("$1"); reasons+=("$1: $2"); }
command -v git >/dev/null || need git "the hook reads and writes repositories with it"
command -v gpg >/dev/null || need gnupg "gpg verifies OpenPGP signatures"
command -v ssh-keygen >/dev/null || need openssh-client "ssh-keygen verifies SSH signatures"
if [ "$dev" = 1 ] && [ -f "$here/tests/system-packages.txt" ]; then
  while read -r pkg why; do
    case "$pkg" in ''|'#'*) continue ;; esac
    case " ${packages[*]} " in *" $pkg "*) continue ;; esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      need "$pkg" "for the tests: $why"
  done < "$here/tests/system-packages.txt"
fi
if [ ${#packages[@]} -gt 0 ]; then
  say "missing system packages, and why they are needed:"
  for reason in "${reasons[@]}"; do say "  $reason"; done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing them with apt-get: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    say "install them first, e.g.: sudo apt-get install ${packages[*]}"
    exit 1
  fi
fi

# 2. Python 3.11 or newer (tomllib).
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "stepup-git needs Python 3.11 or newer as $python (set PYTHON=/path/to/python3.11)"
  exit 1
fi

# 3. The virtual environment and the package (pysequoia is the fast verifier; gpg is the fallback).
if [ ! -x "$venv/bin/python" ]; then
  say "creating the virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
if [ "$dev" = 1 ]; then
  "${pip[@]}" -e "$here[dev]"
else
  "${pip[@]}" "$here"
fi
"${pip[@]}" "pysequoia>=0.1.20" 2>/dev/null || say "pysequoia is not available: verifying with gpg only (slower)"

# 4. The hook, for any repositories named.
if [ ${#args[@]} -gt 0 ]; then
  "$venv/bin/stepup-git" install "${args[@]}"
fi
if [ "$demo" = 1 ]; then
  "$venv/bin/stepup-git" demo
fi
[ ${#args[@]} -gt 0 ] || [ "$demo" = 1 ] || say "ready: $venv/bin/stepup-git"

#!/usr/bin/env bash
# Creates tests/python/.venv from requirements.txt when it is missing or the requirements
# changed since it was made, and prints the venv's python on its last line. Run by .ci/run and,
# when needed, by tests/support/servers.rs, so `cargo test` works on its own too.
set -euo pipefail
cd "$(dirname "$0")"

venv=.venv
stamp="$venv/requirements.installed"

exec 9>.venv.lock
# Two test binaries may get here at once; the second waits and then finds the venv ready.
flock 9

if [ -x "$venv/bin/python" ] && cmp -s requirements.txt "$stamp"; then
    echo "$PWD/$venv/bin/python"
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "error: python3 is not on PATH; the python-socketio interop tests need Python 3.8+ with venv" >&2
    exit 1
fi
echo "creating $PWD/$venv from requirements.txt ($(python3 --version))" >&2
# A .venv that is a symlink (a worktree sharing another checkout's venv) is replaced by a venv
# of its own: `venv --clear` would empty the venv it points to, which other requirements need.
if [ -L "$venv" ]; then
    rm "$venv"
fi
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r requirements.txt >&2
cp requirements.txt "$stamp"
echo "$PWD/$venv/bin/python"

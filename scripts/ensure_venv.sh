#!/usr/bin/env bash
# Create the project's virtual environment and install citygrid (editable) with its test tools.
set -euo pipefail
python="${1:-python3}"
venv="${2:-.venv}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "citygrid needs Python >= 3.11; '$python' is $("$python" --version 2>&1)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get install -y -q python3-venv
      "$python" -m venv "$venv"
    else
      echo "python venv is missing; install it with: sudo apt-get install -y python3-venv" >&2
      exit 1
    fi
  fi
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e ".[test]"

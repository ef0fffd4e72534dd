#!/usr/bin/env bash
# Idempotent set-up shared by the README's two commands: a pinned virtualenv in .venv
# (reinstalled only when requirements.txt changes), this project installed in it (again
# when pyproject.toml changes) and checks for what pip cannot install. Source it: `. scripts/setup.sh [--need-emulator]`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_emulator=0
for arg in "$@"; do [ "$arg" = "--need-emulator" ] && need_emulator=1; done

fail() { echo "setup: $*" >&2; exit 2; }

py=${PYTHON:-python3}
command -v "$py" >/dev/null || fail "python3 not found; fix: install Python 3.11 (apt-get install python3 python3-venv)"
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || fail "Python >= 3.11 needed, found $("$py" --version 2>&1); fix: install Python 3.11+"

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned requirements into .venv (first run takes a few minutes)" >&2
  "$py" -m venv .venv || fail "cannot create .venv; fix: apt-get install python3-venv"
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt 2> >(grep -v 'is ignored: it is neither' >&2) \
    || fail "pip install -r requirements.txt failed (see above)"
  echo "$want" > "$stamp"
  rm -f .venv/.project.sha256  # a fresh dependency set: install the project again too
fi
# The project itself, editable (infra/ and workloads/ import from this tree, the `sovereign`
# console script exists); again whenever pyproject.toml changes. --no-deps: requirements.txt
# above already pinned every dependency.
project_stamp=.venv/.project.sha256
project_want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$project_stamp" 2>/dev/null)" != "$project_want" ] \
    || ! .venv/bin/python -c 'import os, sys, workloads; sys.exit(not workloads.__file__.startswith(os.getcwd() + "/"))' 2>/dev/null; then
  echo "setup: installing this project into .venv (pip install -e .)" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e . \
    || fail "pip install -e . failed (see above)"
  echo "$project_want" > "$project_stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

# The Pub/Sub emulator ships with the gcloud SDK and runs on Java; neither comes from pip.
if [ "$need_emulator" = 1 ]; then
  if ! command -v java >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing Java for the Pub/Sub emulator (apt-get install openjdk-17-jre-headless)" >&2
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; } >/dev/null \
        || fail "could not install Java; fix: apt-get install openjdk-17-jre-headless"
    else
      fail "Java not found (the Pub/Sub emulator needs it); fix: apt-get install openjdk-17-jre-headless"
    fi
  fi
  .venv/bin/python -m workloads.federation.emulator --check \
    || fail "Pub/Sub emulator not found; fix: install the gcloud SDK with its pubsub-emulator component (gcloud components install pubsub-emulator, or apt-get install google-cloud-cli-pubsub-emulator from Google's repository), or set PUBSUB_EMULATOR_BIN to cloud-pubsub-emulator"
fi

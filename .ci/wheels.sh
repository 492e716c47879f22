#!/usr/bin/env bash
# Each plugin is a distribution of its own: build every wheel, then install core and a few plugins
# one by one into a fresh venv (no monorepo requirements, only what each wheel declares, with the
# repository's pins as constraints so torch stays the CPU 2.13.0), listing and using each.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
wheels="$work/wheels"
# PEP 639 license strings need setuptools 77+ (torch usually brings one)
python -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" ||
  python -m pip install -q "setuptools>=77"
# from a copy: setuptools leaves build/ folders in the sources it builds
mkdir -p "$work/src"
cp -r core plugins "$work/src/"
rm -rf "$work"/src/core/build "$work"/src/plugins/*/build
python -m pip wheel -q --no-deps --no-build-isolation -w "$wheels" "$work/src/core" "$work"/src/plugins/*
built=$(find "$wheels" -name '*.whl' | wc -l)
expected=$((1 + $(find plugins -mindepth 1 -maxdepth 1 -type d | wc -l)))
[ "$built" -eq "$expected" ] || { echo "built $built wheels, expected $expected"; exit 1; }
grep -E '^[A-Za-z0-9_.-]+==' requirements.txt > "$work/constraints.txt"
python -m venv "$work/venv"
pip_in() { "$work/venv/bin/pip" install -q --find-links "$wheels" -c "$work/constraints.txt" "$@"; }
ai="$work/venv/bin/autointerp"
plugin_ok() {  # the plugin $1 is listed, loaded, and nothing installed is broken
  "$ai" plugins --json | "$work/venv/bin/python" -c "
import json, sys
rows = json.load(sys.stdin)
bad = [r for r in rows if r['status'] != 'ok']
assert not bad, bad
assert any(r['distribution'] == sys.argv[1] for r in rows), sys.argv[1] + ' not listed'
" "$1"
}
pip_in autointerp
"$ai" plugins --json > /dev/null
for dist in autointerp-report autointerp-explainers autointerp-scorers autointerp-openai \
    autointerp-planted autointerp-transformers; do
  pip_in "$dist"
  plugin_ok "$dist"
done
# use them: a run's config validated through each component, a stored run read and exported
cat > "$work/run.toml" <<'TOML'
[model]
name = "transformers"
model = "HuggingFaceTB/SmolLM2-135M"
[feature_source]
name = "planted"
[explainer]
name = "default"
[llm]
name = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
[[scorers]]
name = "detection"
[[scorers]]
name = "fuzzing"
TOML
"$ai" config validate "$work/run.toml"
cp -r tests/fixtures/run-before-contracts/run "$work/run"
"$ai" status "$work/run" > /dev/null
"$ai" export "$work/run" --out "$work/export"
[ -n "$(find "$work/export" -name '*.jsonl' -size +0)" ] || { echo "export wrote nothing"; exit 1; }
"$work/venv/bin/python" -c "import sys; import autointerp.cli; assert 'ray' not in sys.modules"
echo "wheels ok: $built wheels built; core + 6 plugins installed one by one from their wheels"

#!/bin/sh
# The part of `npm run lint` that biome cannot do: every tracked Python file
# must compile (without leaving __pycache__ behind) and every shell script
# must parse. The C files are compiled with -Werror by the tests that use
# them, and checkpatch reads them in the kernel tier.
set -eu
cd "$(dirname "$0")/.."
py=$(git ls-files '*.py' 2>/dev/null || find . -name '*.py' -not -path './node_modules/*')
if [ -n "$py" ]; then
	# shellcheck disable=SC2086
	python3 -c '
import sys
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        compile(f.read(), path, "exec")
' $py
fi
for s in $(git ls-files '*.sh' .ci/run 2>/dev/null); do
	bash -n "$s"
done
echo "lint-scripts: $(echo "$py" | wc -w) Python files compile, shell scripts parse"

#!/bin/sh
# Smoke test for `make check`: the benchmark in --quick mode (a few seconds)
# must complete with no wrong answer and no failed request. Timings are not
# judged here; `make bench` is for those.
bench=./tests/bench/tcpmux-bench
if [ ! -x "$bench" ]; then
	echo "smoke.sh: $bench is not built" >&2
	exit 99
fi
exec "$bench" --quick

# automake fragment included by Makefile.am: the benchmark.
# `make bench` builds and runs it (`make bench BENCH_FLAGS=--quick` for a
# short run, `BENCH_FLAGS="--only 2,3"` for some scenarios;
# `BENCH_BASELINE=/path/to/old/tcp-multiplexer` measures an older build
# beside it in scenarios 1, 2, 5 and 7); `make check`
# runs it in --quick mode as a smoke test: it must finish with every answer
# right and no request failed; its timings are not judged. `make soak`
# runs the daemon for SOAK_SECONDS under faults and judges the end state
# (`make soak SOAK_SECONDS=120` for a shorter one).
check_PROGRAMS += tests/bench/tcpmux-bench
tests_bench_tcpmux_bench_SOURCES = \
	tests/bench/bench.c tests/bench/bench.h \
	tests/bench/bench_load.c \
	tests/bench/bench_proc.c \
	tests/bench/bench_http.c \
	tests/bench/bench_soak.c
tests_bench_tcpmux_bench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
# the simulators and the harness; not CHECK_LIBS: the bench has its own main
tests_bench_tcpmux_bench_LDADD = tests/libtesting.a

TESTS += tests/bench/smoke.sh
EXTRA_DIST += tests/bench/smoke.sh

.PHONY: bench
bench: tests/bench/tcpmux-bench tests/bench/tcpmux-bench-serial src/tcp-multiplexer
	./tests/bench/tcpmux-bench $(BENCH_FLAGS) $${BENCH_BASELINE:+--baseline "$$BENCH_BASELINE"}
	./tests/bench/tcpmux-bench-serial $(BENCH_FLAGS)

# The serial scenario (a 9600-baud line, tests/bench/bench_serial.c); it
# runs with `make bench`, unless --only names other scenarios, and alone
# with `make bench-serial`.
.PHONY: bench-serial
bench-serial: tests/bench/tcpmux-bench-serial src/tcp-multiplexer
	./tests/bench/tcpmux-bench-serial $(BENCH_FLAGS)
check_PROGRAMS += tests/bench/tcpmux-bench-serial
tests_bench_tcpmux_bench_serial_SOURCES = tests/bench/bench_serial.c
tests_bench_tcpmux_bench_serial_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
tests_bench_tcpmux_bench_serial_LDADD = tests/libtesting.a

SOAK_SECONDS = 600
.PHONY: soak
soak: tests/bench/tcpmux-bench src/tcp-multiplexer
	./tests/bench/tcpmux-bench --soak $(SOAK_SECONDS)

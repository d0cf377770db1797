# libFuzzer targets (./configure CC=clang --enable-fuzzing): one per codec,
# and one for the Modbus id mapping; `make fuzz` runs each for FUZZ_SECONDS
# on its seed corpus in tests/fuzz/corpus/NAME.
FUZZ_TARGETS = tests/fuzz/fuzz-echo tests/fuzz/fuzz-http tests/fuzz/fuzz-iso8583 \
	tests/fuzz/fuzz-mpu tests/fuzz/fuzz-modbus tests/fuzz/fuzz-modbus-map
FUZZ_SECONDS = 30
FUZZ_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g
FUZZ_LIBADD = src/libtcpmux.a

if FUZZING
noinst_PROGRAMS = $(FUZZ_TARGETS)
tests_fuzz_fuzz_echo_SOURCES = tests/fuzz/fuzz_framer.c
tests_fuzz_fuzz_echo_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_CODEC='"echo"'
tests_fuzz_fuzz_echo_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_echo_LDADD = $(FUZZ_LIBADD)
tests_fuzz_fuzz_http_SOURCES = tests/fuzz/fuzz_framer.c
tests_fuzz_fuzz_http_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_CODEC='"http"'
tests_fuzz_fuzz_http_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_http_LDADD = $(FUZZ_LIBADD)
tests_fuzz_fuzz_iso8583_SOURCES = tests/fuzz/fuzz_framer.c
tests_fuzz_fuzz_iso8583_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_CODEC='"iso8583"'
tests_fuzz_fuzz_iso8583_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_iso8583_LDADD = $(FUZZ_LIBADD)
tests_fuzz_fuzz_mpu_SOURCES = tests/fuzz/fuzz_framer.c
tests_fuzz_fuzz_mpu_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_CODEC='"mpu"'
tests_fuzz_fuzz_mpu_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_mpu_LDADD = $(FUZZ_LIBADD)
tests_fuzz_fuzz_modbus_SOURCES = tests/fuzz/fuzz_framer.c
tests_fuzz_fuzz_modbus_CFLAGS = $(FUZZ_CFLAGS) -DFUZZ_CODEC='"modbus"'
tests_fuzz_fuzz_modbus_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_modbus_LDADD = $(FUZZ_LIBADD)
tests_fuzz_fuzz_modbus_map_SOURCES = tests/fuzz/fuzz_modbus_map.c
tests_fuzz_fuzz_modbus_map_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_modbus_map_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_modbus_map_LDADD = $(FUZZ_LIBADD)

# Each target for FUZZ_SECONDS; new inputs go to a scratch copy of the corpus.
fuzz: $(FUZZ_TARGETS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  name=$${t##*/fuzz-}; work=fuzz-work/$$name; mkdir -p $$work; \
	  echo "fuzzing $$name for $(FUZZ_SECONDS) s"; \
	  if ./$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	    -artifact_prefix=$$work/ $$work $(srcdir)/tests/fuzz/corpus/$$name >$$work.log 2>&1; then \
	    grep -E '^(Done|stat::number_of_executed_runs|stat::peak_rss)' $$work.log; \
	  else \
	    tail -n 60 $$work.log; echo "fuzz-$$name FAILED: the input is in $$work/"; exit 1; \
	  fi; \
	done
else
fuzz:
	@echo "configure with CC=clang --enable-fuzzing to build the fuzzers"; exit 1
endif
.PHONY: fuzz

EXTRA_DIST += tests/fuzz/fuzz_framer.c tests/fuzz/fuzz_modbus_map.c tests/fuzz/corpus
clean-local: clean-fuzz
clean-fuzz:
	rm -rf fuzz-work

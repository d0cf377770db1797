# automake fragment included by Makefile.am: the end-to-end suites per
# protocol, with real clients and servers where Debian has them (pymodbus,
# mbpoll, curl, wrk, nginx). A suite whose program is missing runs what it
# can without it, then exits 77 (SKIP) naming what is missing.

E2E_TESTS += \
	tests/check_e2e_lenprefix \
	tests/check_e2e_http \
	tests/check_e2e_httpreal \
	tests/check_e2e_httpbig \
	tests/check_e2e_realmodbus

# The suites that start outside programs share tests/real/proc.c and find
# their helper files (tests/real/) in the source tree, also under distcheck.
REAL_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests \
	-DTESTS_SRCDIR='"$(abs_top_srcdir)/tests"'

tests_check_e2e_lenprefix_SOURCES = tests/check_e2e_lenprefix.c

tests_check_e2e_http_SOURCES = tests/check_e2e_http.c \
	tests/real/proc.c tests/real/proc.h
tests_check_e2e_http_CPPFLAGS = $(REAL_CPPFLAGS)

tests_check_e2e_httpreal_SOURCES = tests/check_e2e_httpreal.c \
	tests/real/proc.c tests/real/proc.h tests/real/pysite.c tests/real/pysite.h
tests_check_e2e_httpreal_CPPFLAGS = $(REAL_CPPFLAGS)

tests_check_e2e_httpbig_SOURCES = tests/check_e2e_httpbig.c \
	tests/real/proc.c tests/real/proc.h tests/real/pysite.c tests/real/pysite.h
tests_check_e2e_httpbig_CPPFLAGS = $(REAL_CPPFLAGS)

tests_check_e2e_realmodbus_SOURCES = tests/check_e2e_realmodbus.c \
	tests/real/proc.c tests/real/proc.h
tests_check_e2e_realmodbus_CPPFLAGS = $(REAL_CPPFLAGS)

EXTRA_DIST += \
	tests/real/nginx.conf.in \
	tests/real/pymodbus_clients.py

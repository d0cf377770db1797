/* Building check suites from lists of tests (TM_CASE, TM_EACH) and running
 * them; apart from testmain.c, so that suites with their own main() (the
 * ones that look for outside programs first) can use them. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

TCase *tm_add_case(Suite *s, const char *name, int timeout_s, const TTest *const tests[], size_t n)
{
	TCase *tc = tcase_create(name);
	if (timeout_s > 0)
		tcase_set_timeout(tc, timeout_s);
	for (size_t i = 0; i < n; i++)
		tcase_add_test(tc, tests[i]);
	suite_add_tcase(s, tc);
	return tc;
}

TCase *tm_add_tests(Suite *s, const char *name, int timeout_s, const struct tm_test t[], size_t n)
{
	TCase *tc = tm_add_case(s, name, timeout_s, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		if (t[i].loops > 0)
			tcase_add_loop_test(tc, t[i].test, 0, t[i].loops);
		else
			tcase_add_test(tc, t[i].test);
	}
	return tc;
}

void tm_add_each(Suite *s, int timeout_s, const TTest *const tests[], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *name = tests[i]->name;
		if (strncmp(name, "test_", 5) == 0)
			name += 5;
		tm_add_case(s, name, timeout_s, &tests[i], 1);
	}
}

void tm_path_in(const char *dir, const char *rel, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", dir, rel);
	ck_assert(n > 0 && (size_t)n < cap);
}

int tm_pair_client(const struct tm_pair *p)
{
	int fd = tm_connect(p->port);
	ck_assert_msg(fd >= 0, "cannot connect to the daemon: %s", strerror(-fd));
	return fd;
}

int tm_run_suite(Suite *s, const char *missing)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		return EXIT_FAILURE;
	if (missing && *missing) {
		printf("SKIP: cases left out for want of:%s\n", missing);
		return TM_SKIP;
	}
	return EXIT_SUCCESS;
}

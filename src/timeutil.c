/* Monotonic time in milliseconds and deadline helpers. */
#include "config.h"
#include "timeutil.h"

#include <limits.h>

int64_t time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int time_left_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - time_now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

struct timespec time_abs(int64_t deadline_ms)
{
	struct timespec ts = { .tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000L };
	return ts;
}

int time_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return -rc;
}

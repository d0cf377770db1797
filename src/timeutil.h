/* Monotonic time in milliseconds and deadline helpers. */
#ifndef TCPMUX_TIMEUTIL_H
#define TCPMUX_TIMEUTIL_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t time_now_ms(void);
/* Milliseconds left until deadline (0 when passed); deadline < 0 means never (-1 returned). */
int time_left_ms(int64_t deadline);
/* The absolute CLOCK_MONOTONIC timespec for deadline, for pthread_cond_timedwait. */
struct timespec time_abs(int64_t deadline_ms);
/* A condition variable whose timed waits use CLOCK_MONOTONIC (time_abs).
 * Returns 0 or -errno. */
int time_cond_init(pthread_cond_t *c);

#endif

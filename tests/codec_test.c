/* The tests the length-delimited codec suites share, run over the tables
 * of the suite's ct_under_test. */
#include "config.h"
#include "codec_test.h"

#define T (&ct_under_test)

/* Every split of a frame; also_response: the response framer frames the
 * whole of it too. */
START_TEST(test_splits)
{
	const struct ct_msg *f = &T->frames[_i];
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	struct frame_ctx c = ct_splits(T->codec->request, &base, f->msg, f->len, f->name);
	ck_assert(ct_same_ctx(&c, &base));
	if (T->also_response) {
		c = base;
		ck_assert_int_eq(ct_call(T->codec->response, &c, f->msg, f->len, 0), (ssize_t)f->len);
	}
}
END_TEST

START_TEST(test_registered)
{
	ck_assert_ptr_eq(codec_find(T->find), T->codec);
	if (T->one_framer)
		ck_assert_ptr_eq(T->codec->request, T->codec->response);
	if (T->error_reply)
		ck_assert_ptr_nonnull(T->codec->error_reply);
	else
		ck_assert_ptr_null(T->codec->error_reply);
	ck_assert_int_eq(T->codec->tagged, T->tagged);
	if (T->buf_exactly)
		ck_assert_uint_eq(T->codec->initial_buf, T->buf_exactly);
	else
		ck_assert_uint_ge(T->codec->initial_buf, T->buf_at_least);
}
END_TEST

START_TEST(test_two_frames)
{
	const struct ct_msg *a = &T->frames[_i], *b = &T->frames[(_i + 1) % T->n_frames];
	struct frame_ctx base = ct_ctx(CT_MAX_FRAME);
	ct_pair(T->codec->request, &base, a->msg, a->len, b->msg, b->len, a->name);
}
END_TEST

START_TEST(test_truncated_at_eof)
{
	struct frame_ctx c = ct_ctx(CT_MAX_FRAME);
	for (int i = 0; i < T->n_truncated; i++)
		ck_assert_int_eq(ct_call(T->codec->request, &c, T->truncated[i].msg,
					 T->truncated[i].len, 1), 0);
}
END_TEST

START_TEST(test_bad)
{
	ct_check_bad(T->codec->request, &T->bad[_i]);
}
END_TEST

START_TEST(test_sizes)
{
	const struct ct_size *z = &T->sizes[_i];
	struct frame_ctx c = ct_ctx(z->max);
	ssize_t r = ct_call(T->codec->request, &c, z->msg, z->len, 0);
	ck_assert_msg(r == z->want, "%s: gave %zd, want %zd", z->name, r, z->want);
}
END_TEST

Suite *ct_suite(const TTest *registered, const TTest *const extra[], size_t n_extra,
		const TTest *truncated, const char *refused)
{
	Suite *s = suite_create(T->name);
	TCase *tc = TM_CASE(s, "registered", 0, test_registered);
	if (registered)
		tcase_add_test(tc, registered);
	tc = TM_LOOPS(s, "every split point", 0, { test_splits, T->n_frames });
	for (size_t i = 0; i < n_extra; i++)
		tcase_add_test(tc, extra[i]);
	TM_LOOPS(s, "two frames in one buffer", 0, { test_two_frames, T->n_frames });
	tc = tm_add_case(s, "truncated at eof", 0, NULL, 0);
	if (T->n_truncated > 0)
		tcase_add_test(tc, test_truncated_at_eof);
	if (truncated)
		tcase_add_test(tc, truncated);
	tc = tm_add_case(s, refused, 0, NULL, 0);
	if (T->n_bad > 0)
		tcase_add_loop_test(tc, test_bad, 0, T->n_bad);
	if (T->n_sizes > 0)
		tcase_add_loop_test(tc, test_sizes, 0, T->n_sizes);
	return s;
}

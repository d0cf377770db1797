/* The main() every check program shares: it runs the one suite its file makes. */
#include <check.h>

#include "testing.h"

Suite *make_suite(void);

int main(void)
{
	return tm_run_suite(make_suite(), NULL);
}

/*
 * The C tests' one assertion: count a check that passed or failed, say
 * where a failure was, and go on (main reports the totals).
 */
#ifndef P0F_SPEC_CHECK_H
#define P0F_SPEC_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (cond) {                                                   \
			passed++;                                             \
		} else {                                                      \
			failed++;                                             \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
			        __LINE__, #cond);                             \
		}                                                             \
	} while (0)

#endif

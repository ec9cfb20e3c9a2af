/*
 * Shared by the fuzz targets and the replay driver: the libFuzzer entry
 * point (declared here so -Wmissing-prototypes holds), and a check that
 * aborts, which libFuzzer and the replay driver both report as a crash.
 */
#ifndef P0F_FUZZ_H
#define P0F_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: invariant broken: %s\n",     \
			        __FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

#endif

/*
 * The p0f v3 query layout and a clock, shared by the benchmark's C load
 * generators (p0f-bench-ref, p0f-bench-many): their own code, nothing from
 * the library, so their figures say what the daemon (or the mux) serves.
 */
#ifndef P0F_BENCH_REF_WIRE_H
#define P0F_BENCH_REF_WIRE_H

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define QLEN 21
#define RLEN 232
#define QMAGIC 0x50304601u
#define RMAGIC 0x50304602u

static inline double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* magic in host order, type, 16 address bytes (IPv4 in the first 4). */
static inline int build_query(const char *text, uint8_t q[QLEN])
{
	uint32_t magic = QMAGIC;

	memset(q, 0, QLEN);
	memcpy(q, &magic, 4);
	if (inet_pton(AF_INET, text, q + 5) == 1) {
		q[4] = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, text, q + 5) == 1) {
		q[4] = 6;
		return 0;
	}
	return -1;
}

#endif

/*
 * The address parser, the v3 query encoder and the formatter, with their
 * round-trip invariants:
 *  - a parsed address formats, and the text parses back to the same bytes;
 *  - the query built from the text is the query built from the address,
 *    and the query decoder gives the address back;
 *  - formatting into a buffer one byte too small fails cleanly (the
 *    buffers are heap blocks of the exact size, so ASan sees any overflow).
 * The same bytes are also read as a raw struct p0f_addr (as a caller's
 * corrupted struct would be), as a 21-byte v3 query and as a 24-byte v2
 * query.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "p0f_codec.h"

static int same_addr(const struct p0f_addr *a, const struct p0f_addr *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

/* Format into an exact-size heap buffer; check the result against `text`. */
static void format_exact(const struct p0f_addr *a, const char *text)
{
	size_t n = strlen(text);
	char *buf = malloc(n + 1);

	FUZZ_CHECK(buf != NULL);
	FUZZ_CHECK(p0f_addr_format(a, buf, n + 1) == 0);
	FUZZ_CHECK(strcmp(buf, text) == 0);
	FUZZ_CHECK(p0f_addr_format(a, buf, n) == EINVAL);
	free(buf);
}

static void check_parsed(const struct p0f_addr *a, const char *orig, size_t origlen)
{
	char text[P0F_ADDR_TEXT_MAX];
	struct p0f_addr back;
	uint8_t q1[P0F_QUERY_LEN], q2[P0F_QUERY_LEN];
	static const uint8_t zero[12];

	FUZZ_CHECK(a->family == 4 || a->family == 6);
	if (a->family == 4)
		FUZZ_CHECK(memcmp(a->bytes + 4, zero, 12) == 0);
	FUZZ_CHECK(p0f_scope_name(p0f_addr_scope(a)) != NULL);

	FUZZ_CHECK(p0f_addr_format(a, text, sizeof text) == 0);
	FUZZ_CHECK(strlen(text) < sizeof text);
	FUZZ_CHECK(p0f_addr_parse(text, strlen(text), &back) == 0);
	FUZZ_CHECK(same_addr(a, &back));
	format_exact(a, text);

	p0f_query_encode(a, q1);
	FUZZ_CHECK(p0f_query_from_text(orig, origlen, q2) == 0);
	FUZZ_CHECK(memcmp(q1, q2, sizeof q1) == 0);
	FUZZ_CHECK(q1[4] == a->family);
	FUZZ_CHECK(p0f_query_decode(q1, sizeof q1, &back) == 0);
	FUZZ_CHECK(same_addr(a, &back));
}

/* Any 17 bytes as family + address, as formatting code may be handed. */
static void check_raw(const uint8_t *data)
{
	struct p0f_addr a, back;
	char text[P0F_ADDR_TEXT_MAX];
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	a.family = data[0];
	memcpy(a.bytes, data + 1, 16);
	(void)p0f_scope_name(p0f_addr_scope(&a));
	if (p0f_addr_format(&a, text, sizeof text) != 0) {
		FUZZ_CHECK(a.family != 4 && a.family != 6);
		return;
	}
	format_exact(&a, text);
	FUZZ_CHECK(p0f_addr_parse(text, strlen(text), &back) == 0);
	if (a.family == 6 && memcmp(a.bytes, mapped, 12) == 0) {
		/* Mapped addresses come back as IPv4, by design. */
		FUZZ_CHECK(back.family == 4 && memcmp(back.bytes, a.bytes + 12, 4) == 0);
	} else {
		FUZZ_CHECK(back.family == a.family);
		FUZZ_CHECK(memcmp(back.bytes, a.bytes, a.family == 4 ? 4 : 16) == 0);
	}
}

static void check_queries(const uint8_t *data, size_t size)
{
	struct p0f_addr a;
	struct p0f2_query q2;
	uint8_t wire[P0F2_QUERY_LEN];

	if (p0f_query_decode(data, size, &a) == 0) {
		FUZZ_CHECK(size == P0F_QUERY_LEN);
		p0f_query_encode(&a, wire);
		FUZZ_CHECK(memcmp(wire, data, a.family == 4 ? 9 : P0F_QUERY_LEN) == 0);
	}
	if (p0f2_query_decode(data, size, &q2) == 0) {
		FUZZ_CHECK(size == P0F2_QUERY_LEN);
		p0f2_query_encode(&q2, wire);
		/* Bytes 5..7 are padding, sent as zero. */
		FUZZ_CHECK(memcmp(wire, data, 5) == 0);
		FUZZ_CHECK(memcmp(wire + 8, data + 8, P0F2_QUERY_LEN - 8) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p0f_addr a;
	uint8_t q[P0F_QUERY_LEN];
	/* The parser takes a length, not a C string: data is used as is,
	 * unterminated, so reading past `size` would be an ASan report. */
	const char *text = (const char *)data;
	int rc = p0f_addr_parse(text, size, &a);

	if (rc == 0)
		check_parsed(&a, text, size);
	else
		FUZZ_CHECK(rc == EINVAL && p0f_query_from_text(text, size, q) == EINVAL);
	if (size >= 17)
		check_raw(data);
	check_queries(data, size);
	return 0;
}

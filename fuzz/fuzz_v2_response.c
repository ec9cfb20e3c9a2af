/*
 * The v2 (p0f 2.0.x) reply decoder on arbitrary bytes: a known type,
 * strings terminated within their widths, and decode(encode(r)) == r.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "p0f_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p0f2_response r, again;
	uint8_t wire[P0F2_RESP_LEN];
	int rc = p0f2_response_decode(data, size, &r);

	if (rc != 0) {
		FUZZ_CHECK(rc == EPROTO);
		return 0;
	}
	FUZZ_CHECK(size == P0F2_RESP_LEN);
	FUZZ_CHECK(p0f2_type_name(r.type) != NULL);
	FUZZ_CHECK(memchr(r.genre, '\0', sizeof r.genre) != NULL);
	FUZZ_CHECK(memchr(r.detail, '\0', sizeof r.detail) != NULL);
	FUZZ_CHECK(memchr(r.link, '\0', sizeof r.link) != NULL);
	FUZZ_CHECK(memchr(r.tos, '\0', sizeof r.tos) != NULL);
	FUZZ_CHECK(r.dist >= -128 && r.dist <= 127);

	p0f2_response_encode(&r, wire);
	FUZZ_CHECK(p0f2_response_decode(wire, sizeof wire, &again) == 0);
	FUZZ_CHECK(memcmp(&r, &again, sizeof r) == 0);
	/* Everything but the strings' tails and the padding is kept verbatim. */
	FUZZ_CHECK(memcmp(wire, data, 9) == 0);
	FUZZ_CHECK(memcmp(wire + 130, data + 130, 3) == 0);
	FUZZ_CHECK(memcmp(wire + 134, data + 134, 4) == 0);
	FUZZ_CHECK(memcmp(wire + 140, data + 140, 4) == 0);
	FUZZ_CHECK(wire[69] == data[69]);
	return 0;
}

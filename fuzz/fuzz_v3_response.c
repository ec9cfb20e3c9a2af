/*
 * The v3 reply decoder on arbitrary bytes. Beyond "no crash, no overread",
 * what a decoded reply promises: a known status, strings terminated within
 * 32 bytes, a distance that is a hop count or unknown, all-zero fields
 * unless ok, and decode(encode(r)) == r.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "p0f_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p0f_response r, again;
	uint8_t wire[P0F_RESP_LEN];
	const char *strs[6];
	size_t i;
	int rc = p0f_response_decode(data, size, &r);

	if (rc != 0) {
		FUZZ_CHECK(rc == EPROTO);
		return 0;
	}
	FUZZ_CHECK(size == P0F_RESP_LEN);
	FUZZ_CHECK(p0f_status_name(r.status) != NULL);
	FUZZ_CHECK(r.distance == P0F_DIST_UNKNOWN || (r.distance >= 0 && r.distance < 255));
	strs[0] = r.os_name;
	strs[1] = r.os_flavor;
	strs[2] = r.http_name;
	strs[3] = r.http_flavor;
	strs[4] = r.link_type;
	strs[5] = r.language;
	for (i = 0; i < 6; i++)
		FUZZ_CHECK(memchr(strs[i], '\0', P0F_STR_LEN + 1) != NULL);
	if (r.status != P0F_STATUS_OK) {
		FUZZ_CHECK(r.first_seen == 0 && r.last_seen == 0 && r.total_conn == 0);
		FUZZ_CHECK(r.uptime_min == 0 && r.up_mod_days == 0);
		FUZZ_CHECK(r.last_nat == 0 && r.last_chg == 0);
		FUZZ_CHECK(r.distance == P0F_DIST_UNKNOWN && r.bad_sw == 0 && r.os_match_q == 0);
		for (i = 0; i < 6; i++)
			FUZZ_CHECK(strs[i][0] == '\0');
	}

	/* Both structs went through the decoder's memset, padding included. */
	p0f_response_encode(&r, wire);
	FUZZ_CHECK(p0f_response_decode(wire, sizeof wire, &again) == 0);
	FUZZ_CHECK(memcmp(&r, &again, sizeof r) == 0);
	/* The header and the integers of an ok reply are kept verbatim
	 * (the distance only when known: unknown is always sent as 255). */
	FUZZ_CHECK(memcmp(wire, data, 8) == 0);
	if (r.status == P0F_STATUS_OK) {
		FUZZ_CHECK(memcmp(wire + 8, data + 8, 28) == 0);
		FUZZ_CHECK(memcmp(wire + 38, data + 38, 2) == 0);
		if (r.distance != P0F_DIST_UNKNOWN)
			FUZZ_CHECK(memcmp(wire + 36, data + 36, 2) == 0);
	}
	return 0;
}

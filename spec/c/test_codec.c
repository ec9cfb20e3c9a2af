/*
 * Unit tests of the pure codec (src/p0f_codec.c), without Lua.
 *
 * Reply vectors are built byte by byte at the offsets of p0f's api.h
 * (struct p0f_api_response), never with p0f_response_encode: a test that encodes with the code
 * under test would only prove that the encoder and decoder agree with each
 * other, not with p0f. Integers go in with memcpy in host order, as the
 * daemon writes them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "p0f_codec.h"

#include "check.h"

/* ---- helpers ---------------------------------------------------------- */

static void put32(uint8_t *buf, size_t off, uint32_t v) { memcpy(buf + off, &v, 4); }
static void put16(uint8_t *buf, size_t off, uint16_t v) { memcpy(buf + off, &v, 2); }

static uint32_t get32(const uint8_t *buf, size_t off)
{
	uint32_t v;
	memcpy(&v, buf + off, 4);
	return v;
}

static uint16_t get16(const uint8_t *buf, size_t off)
{
	uint16_t v;
	memcpy(&v, buf + off, 2);
	return v;
}

static int all_zero(const uint8_t *p, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* Parse a NUL-terminated literal. */
static int parse(const char *text, struct p0f_addr *a)
{
	return p0f_addr_parse(text, strlen(text), a);
}

/* Parse then format: the canonical spelling, or "" when rejected. */
static const char *canon(const char *text)
{
	static char out[P0F_ADDR_TEXT_MAX];
	struct p0f_addr a;

	out[0] = '\0';
	if (parse(text, &a) != 0 || p0f_addr_format(&a, out, sizeof out) != 0)
		out[0] = '\0';
	return out;
}

static enum p0f_scope scope_of(const char *text)
{
	struct p0f_addr a;
	if (parse(text, &a) != 0)
		return (enum p0f_scope)-1;
	return p0f_addr_scope(&a);
}

/* ---- v3 queries ------------------------------------------------------- */

static void test_query_ipv4(void)
{
	uint8_t q[P0F_QUERY_LEN + 4];
	static const uint8_t addr[4] = { 192, 0, 2, 7 };

	/* Poison the buffer and a guard past the end: the encoder must write
	 * exactly 21 bytes and zero the unused 12 address bytes itself. */
	memset(q, 0xAA, sizeof q);
	CHECK(p0f_query_from_text("192.0.2.7", 9, q) == 0);
	CHECK(P0F_QUERY_LEN == 21);
	CHECK(get32(q, 0) == 0x50304601u);
	CHECK(q[4] == 4);
	CHECK(memcmp(q + 5, addr, 4) == 0);
	CHECK(all_zero(q + 9, 12));
	CHECK(q[21] == 0xAA && q[22] == 0xAA && q[23] == 0xAA && q[24] == 0xAA);

	/* From a struct whose unused bytes hold junk: still zero on the wire. */
	{
		struct p0f_addr a;
		memset(&a, 0x55, sizeof a);
		a.family = 4;
		memcpy(a.bytes, addr, 4);
		memset(q, 0xAA, sizeof q);
		p0f_query_encode(&a, q);
		CHECK(q[4] == 4 && memcmp(q + 5, addr, 4) == 0 && all_zero(q + 9, 12));
	}
}

/* text -> expected family and 16 address bytes */
static void expect_query(const char *text, uint8_t family, const uint8_t bytes[16])
{
	uint8_t q[P0F_QUERY_LEN + 1];

	memset(q, 0xAA, sizeof q);
	CHECK(p0f_query_from_text(text, strlen(text), q) == 0);
	CHECK(get32(q, 0) == P0F_QUERY_MAGIC);
	CHECK(q[4] == family);
	CHECK(memcmp(q + 5, bytes, 16) == 0);
	CHECK(q[21] == 0xAA);
}

static void test_query_ipv6(void)
{
	static const uint8_t doc[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
		                         0, 0, 0, 0, 0, 0, 0, 0x01 };
	static const uint8_t full[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02,
		                          0x00, 0x03, 0x00, 0x04, 0x00, 0x05, 0xab, 0xcd };
	static const uint8_t any[16] = { 0 };
	static const uint8_t one[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	static const uint8_t v4[16] = { 1, 2, 3, 4 };
	static const uint8_t nat64[16] = { 0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0,
		                           0, 0, 0, 0, 1, 2, 3, 4 };

	expect_query("2001:db8::1", 6, doc);
	expect_query("2001:0db8:0000:0000:0000:0000:0000:0001", 6, doc);
	expect_query("2001:DB8::1", 6, doc);
	expect_query("2001:db8:1:2:3:4:5:abcd", 6, full);
	expect_query("2001:DB8:1:2:3:4:5:ABCD", 6, full);
	expect_query("::", 6, any);
	expect_query("::1", 6, one);
	/* p0f stores IPv4-mapped peers as IPv4: type 4, not 6. */
	expect_query("::ffff:1.2.3.4", 4, v4);
	expect_query("::FFFF:1.2.3.4", 4, v4);
	expect_query("0:0:0:0:0:ffff:102:304", 4, v4);
	/* The NAT64 prefix is a real IPv6 address: it stays type 6. */
	expect_query("64:ff9b::1.2.3.4", 6, nat64);
}

static void expect_reject(const char *text, size_t len)
{
	uint8_t q[P0F_QUERY_LEN];
	struct p0f_addr a;

	CHECK(p0f_query_from_text(text, len, q) == EINVAL);
	CHECK(p0f_addr_parse(text, len, &a) == EINVAL);
}

static void test_query_rejects(void)
{
	static const char nul_inside[] = "1.2.3.4\0" "5";
	/* 46 characters: one more than the longest address spelling. */
	static const char too_long[] = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555";
	/* Far longer than the parser's stack buffer. */
	char huge[4096];
	/* 45 characters: the longest valid spelling must still pass. */
	static const char longest[] = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
	struct p0f_addr a;

	expect_reject("", 0);
	CHECK(p0f_addr_parse(NULL, 0, &a) == EINVAL);
	expect_reject("garbage", 7);
	expect_reject(nul_inside, sizeof nul_inside - 1);
	expect_reject("1.2.3.4", 8); /* the terminator counted in the length */
	CHECK(strlen(too_long) == 46);
	expect_reject(too_long, strlen(too_long));
	memset(huge, '1', sizeof huge);
	expect_reject(huge, sizeof huge);
	CHECK(strlen(longest) == 45);
	CHECK(parse(longest, &a) == 0 && a.family == 6);
	expect_reject("1.2.3", 5);
	expect_reject("1.2.3.4.5", 9);
	expect_reject("256.1.1.1", 9);
	expect_reject("[::1]", 5);
	expect_reject("fe80::1%eth0", 12);
	expect_reject(" 1.2.3.4", 8);
	expect_reject("1.2.3.4 ", 8);
	expect_reject(" ::1", 4);
	expect_reject("::1 ", 4);
	expect_reject("1:2:3:4:5:6:7:8:9", 17);
	expect_reject("::1::", 5);
	/* A length shorter than the text: only the prefix counts. */
	CHECK(p0f_addr_parse("1.2.3.45", 7, &a) == 0 && a.bytes[3] == 4);
}

static void test_query_decode(void)
{
	uint8_t q[P0F_QUERY_LEN];
	struct p0f_addr a;

	CHECK(p0f_query_from_text("10.1.2.3", 8, q) == 0);
	CHECK(p0f_query_decode(q, sizeof q, &a) == 0);
	CHECK(a.family == 4 && a.bytes[0] == 10 && a.bytes[3] == 3 && all_zero(a.bytes + 4, 12));
	CHECK(p0f_query_decode(q, sizeof q - 1, &a) == EINVAL);
	q[4] = 5;
	CHECK(p0f_query_decode(q, sizeof q, &a) == EINVAL);
	q[4] = 4;
	q[0] ^= 1;
	CHECK(p0f_query_decode(q, sizeof q, &a) == EINVAL);
}

/* ---- formatting and scopes ------------------------------------------------ */

static void test_format(void)
{
	struct p0f_addr a;
	char small[8];

	CHECK(strcmp(canon("192.0.2.7"), "192.0.2.7") == 0);
	CHECK(strcmp(canon("2001:0DB8:0:0:0:0:0:1"), "2001:db8::1") == 0);
	CHECK(strcmp(canon("::ffff:192.0.2.7"), "192.0.2.7") == 0);
	CHECK(strcmp(canon("::"), "::") == 0);
	CHECK(strcmp(canon("::1"), "::1") == 0);
	CHECK(strcmp(canon("64:ff9b::1.2.3.4"), "64:ff9b::102:304") == 0);
	CHECK(strcmp(canon("fe80:0::a:B"), "fe80::a:b") == 0);
	CHECK(strcmp(canon("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"),
	              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == 0);

	/* Format then parse gives the same bytes back. */
	CHECK(parse("2001:db8:1:2:3:4:5:6", &a) == 0);
	{
		char text[P0F_ADDR_TEXT_MAX];
		struct p0f_addr b;
		CHECK(p0f_addr_format(&a, text, sizeof text) == 0);
		CHECK(parse(text, &b) == 0);
		CHECK(b.family == a.family && memcmp(a.bytes, b.bytes, 16) == 0);
	}

	/* Too small a buffer, or an unknown family: EINVAL, not an overflow. */
	CHECK(p0f_addr_format(&a, small, sizeof small) == EINVAL);
	CHECK(parse("1.2.3.4", &a) == 0);
	CHECK(p0f_addr_format(&a, small, sizeof small) == 0 && strcmp(small, "1.2.3.4") == 0);
	CHECK(p0f_addr_format(&a, small, 7) == EINVAL);
	a.family = 5;
	CHECK(p0f_addr_format(&a, small, sizeof small) == EINVAL);
}

static void test_scope(void)
{
	CHECK(scope_of("127.0.0.1") == P0F_SCOPE_LOOPBACK);
	CHECK(scope_of("127.255.255.254") == P0F_SCOPE_LOOPBACK);
	CHECK(scope_of("0.0.0.0") == P0F_SCOPE_UNSPECIFIED);
	CHECK(scope_of("10.0.0.1") == P0F_SCOPE_PRIVATE);
	CHECK(scope_of("11.0.0.1") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("172.15.255.255") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("172.16.0.0") == P0F_SCOPE_PRIVATE);
	CHECK(scope_of("172.31.255.255") == P0F_SCOPE_PRIVATE);
	CHECK(scope_of("172.32.0.0") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("192.168.1.1") == P0F_SCOPE_PRIVATE);
	CHECK(scope_of("192.169.1.1") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("100.63.255.255") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("100.64.0.0") == P0F_SCOPE_PRIVATE);
	CHECK(scope_of("100.127.255.255") == P0F_SCOPE_PRIVATE);
	CHECK(scope_of("100.128.0.0") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("169.254.0.1") == P0F_SCOPE_LINKLOCAL);
	CHECK(scope_of("169.253.0.1") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("192.0.2.7") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("::ffff:10.0.0.1") == P0F_SCOPE_PRIVATE);
	CHECK(scope_of("::ffff:127.0.0.1") == P0F_SCOPE_LOOPBACK);

	CHECK(scope_of("::1") == P0F_SCOPE_LOOPBACK);
	CHECK(scope_of("::") == P0F_SCOPE_UNSPECIFIED);
	CHECK(scope_of("::2") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("1::1") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("fc00::1") == P0F_SCOPE_PRIVATE);
	CHECK(scope_of("fdff:ffff::1") == P0F_SCOPE_PRIVATE);
	CHECK(scope_of("fbff::1") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("fe00::1") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("fe80::1") == P0F_SCOPE_LINKLOCAL);
	CHECK(scope_of("febf:ffff::1") == P0F_SCOPE_LINKLOCAL);
	CHECK(scope_of("fec0::1") == P0F_SCOPE_PUBLIC);
	CHECK(scope_of("2001:db8::1") == P0F_SCOPE_PUBLIC);

	CHECK(strcmp(p0f_scope_name(P0F_SCOPE_PUBLIC), "public") == 0);
	CHECK(strcmp(p0f_scope_name(P0F_SCOPE_LOOPBACK), "loopback") == 0);
	CHECK(strcmp(p0f_scope_name(P0F_SCOPE_PRIVATE), "private") == 0);
	CHECK(strcmp(p0f_scope_name(P0F_SCOPE_LINKLOCAL), "linklocal") == 0);
	CHECK(strcmp(p0f_scope_name(P0F_SCOPE_UNSPECIFIED), "unspecified") == 0);
}

/* ---- v3 replies ------------------------------------------------------------ */

/* A 32-character value: the wire form carries no terminator for it. */
#define FULL32 "10.9 or newer (sometimes iPhone "

/* An ok reply with every field distinct, laid out as p0f's api.h says. */
static void make_reply(uint8_t *b, uint32_t status)
{
	memset(b, 0, P0F_RESP_LEN);
	put32(b, 0, 0x50304602u);
	put32(b, 4, status);
	put32(b, 8, 1700000001u);   /* first_seen */
	put32(b, 12, 1700000002u);  /* last_seen */
	put32(b, 16, 3);            /* total_conn */
	put32(b, 20, 0xfedcba98u);  /* uptime_min: above 2^31 on purpose */
	put32(b, 24, 49);           /* up_mod_days */
	put32(b, 28, 1700000005u);  /* last_nat */
	put32(b, 32, 1700000006u);  /* last_chg */
	put16(b, 36, 7);            /* distance */
	b[38] = 2;                  /* bad_sw */
	b[39] = 3;                  /* os_match_q: fuzzy | generic */
	memcpy(b + 40, "Linux", 5);
	memcpy(b + 72, "2.2.x-3.x", 9);
	memcpy(b + 104, "Firefox", 7);
	memcpy(b + 136, "10.x or newer", 13);
	memcpy(b + 168, "Ethernet or modem", 17);
	memcpy(b + 200, "German", 6);
}

static void test_reply_ok(void)
{
	uint8_t b[P0F_RESP_LEN];
	struct p0f_response r;

	CHECK(P0F_RESP_LEN == 232);
	make_reply(b, 0x10);
	CHECK(p0f_response_decode(b, sizeof b, &r) == 0);
	CHECK(r.status == P0F_STATUS_OK);
	CHECK(r.first_seen == 1700000001u);
	CHECK(r.last_seen == 1700000002u);
	CHECK(r.total_conn == 3);
	CHECK(r.uptime_min == 0xfedcba98u);
	CHECK(r.up_mod_days == 49);
	CHECK(r.last_nat == 1700000005u);
	CHECK(r.last_chg == 1700000006u);
	CHECK(r.distance == 7);
	CHECK(r.bad_sw == 2);
	CHECK(r.os_match_q == 3);
	CHECK(strcmp(r.os_name, "Linux") == 0);
	CHECK(strcmp(r.os_flavor, "2.2.x-3.x") == 0);
	CHECK(strcmp(r.http_name, "Firefox") == 0);
	CHECK(strcmp(r.http_flavor, "10.x or newer") == 0);
	CHECK(strcmp(r.link_type, "Ethernet or modem") == 0);
	CHECK(strcmp(r.language, "German") == 0);
	CHECK(strcmp(p0f_status_name(r.status), "ok") == 0);
}

static void test_reply_other_statuses(void)
{
	static const uint32_t statuses[2] = { 0x20, 0x00 };
	static const char *const names[2] = { "nomatch", "badquery" };
	uint8_t b[P0F_RESP_LEN];
	struct p0f_response r;
	int i;

	for (i = 0; i < 2; i++) {
		/* Every other field is filled in on the wire: the decoder must
		 * still report only the status, as p0f's clients expect. */
		make_reply(b, statuses[i]);
		memset(&r, 0x5A, sizeof r);
		CHECK(p0f_response_decode(b, sizeof b, &r) == 0);
		CHECK(r.status == statuses[i]);
		CHECK(strcmp(p0f_status_name(r.status), names[i]) == 0);
		CHECK(r.first_seen == 0 && r.last_seen == 0 && r.total_conn == 0);
		CHECK(r.uptime_min == 0 && r.up_mod_days == 0);
		CHECK(r.last_nat == 0 && r.last_chg == 0);
		CHECK(r.distance == P0F_DIST_UNKNOWN);
		CHECK(r.bad_sw == 0 && r.os_match_q == 0);
		CHECK(r.os_name[0] == 0 && r.os_flavor[0] == 0);
		CHECK(r.http_name[0] == 0 && r.http_flavor[0] == 0);
		CHECK(r.link_type[0] == 0 && r.language[0] == 0);
	}
}

static void test_reply_rejects(void)
{
	uint8_t b[P0F_RESP_LEN + 1];
	struct p0f_response r;
	static const uint32_t bad_status[] = { 0x01, 0x11, 0x30, 0x10000010u, 0xffffffffu };
	size_t i;

	for (i = 0; i < sizeof bad_status / sizeof bad_status[0]; i++) {
		make_reply(b, bad_status[i]);
		CHECK(p0f_response_decode(b, P0F_RESP_LEN, &r) == EPROTO);
	}
	CHECK(p0f_status_name(0x30) == NULL);

	make_reply(b, 0x10);
	put32(b, 0, 0x50304601u); /* the query magic, not the reply's */
	CHECK(p0f_response_decode(b, P0F_RESP_LEN, &r) == EPROTO);
	make_reply(b, 0x10);
	put32(b, 0, 0x02463050u); /* the magic byte-swapped */
	CHECK(p0f_response_decode(b, P0F_RESP_LEN, &r) == EPROTO);

	make_reply(b, 0x10);
	b[P0F_RESP_LEN] = 0;
	CHECK(p0f_response_decode(b, 0, &r) == EPROTO);
	CHECK(p0f_response_decode(b, 231, &r) == EPROTO);
	CHECK(p0f_response_decode(b, 233, &r) == EPROTO);
	CHECK(p0f_response_decode(b, 232, &r) == 0);
}

static void test_reply_strings(void)
{
	uint8_t b[P0F_RESP_LEN];
	struct p0f_response r;

	/* All six fields full: no NUL anywhere from offset 40 to the end. */
	make_reply(b, 0x10);
	memcpy(b + 40, FULL32, 32);
	memcpy(b + 72, FULL32, 32);
	memcpy(b + 104, FULL32, 32);
	memcpy(b + 136, FULL32, 32);
	memcpy(b + 168, FULL32, 32);
	memcpy(b + 200, FULL32, 32);
	CHECK(strlen(FULL32) == 32);
	CHECK(p0f_response_decode(b, sizeof b, &r) == 0);
	CHECK(strlen(r.os_name) == 32 && memcmp(r.os_name, FULL32, 32) == 0);
	CHECK(strlen(r.os_flavor) == 32 && strcmp(r.os_flavor, FULL32) == 0);
	CHECK(strcmp(r.http_name, FULL32) == 0);
	CHECK(strcmp(r.http_flavor, FULL32) == 0);
	CHECK(strcmp(r.link_type, FULL32) == 0);
	CHECK(strcmp(r.language, FULL32) == 0);

	/* Junk after a terminator stays out; a neighbour's text does not leak in. */
	make_reply(b, 0x10);
	memcpy(b + 40, "Linux\0junk", 10);
	memcpy(b + 72, FULL32, 32);
	CHECK(p0f_response_decode(b, sizeof b, &r) == 0);
	CHECK(strcmp(r.os_name, "Linux") == 0);
	CHECK(strcmp(r.os_flavor, FULL32) == 0);
	CHECK(strcmp(r.http_name, "Firefox") == 0);
}

static int decode_distance(int16_t wire)
{
	uint8_t b[P0F_RESP_LEN];
	struct p0f_response r;

	make_reply(b, 0x10);
	put16(b, 36, (uint16_t)wire);
	if (p0f_response_decode(b, sizeof b, &r) != 0)
		return -1000;
	return r.distance;
}

static void test_reply_distance(void)
{
	CHECK(P0F_DIST_UNKNOWN == -1);
	CHECK(decode_distance(0) == 0);
	CHECK(decode_distance(1) == 1);
	CHECK(decode_distance(126) == 126);
	CHECK(decode_distance(255) == P0F_DIST_UNKNOWN); /* p0f's u8 -1 */
	CHECK(decode_distance(-1) == P0F_DIST_UNKNOWN);  /* the README's -1 */
	CHECK(decode_distance(-200) == P0F_DIST_UNKNOWN);
	CHECK(decode_distance(300) == P0F_DIST_UNKNOWN);
}

static void test_reply_round_trip(void)
{
	uint8_t b[P0F_RESP_LEN], again[P0F_RESP_LEN];
	struct p0f_response r, r2;

	/* A clean wire reply (NUL padding, known distance) survives
	 * decode + encode byte for byte. */
	make_reply(b, 0x10);
	CHECK(p0f_response_decode(b, sizeof b, &r) == 0);
	p0f_response_encode(&r, again);
	CHECK(memcmp(b, again, sizeof b) == 0);

	/* Unknown distance goes out as 255, as the daemon sends it. */
	r.distance = P0F_DIST_UNKNOWN;
	p0f_response_encode(&r, again);
	CHECK(get16(again, 36) == 255);
	CHECK(p0f_response_decode(again, sizeof again, &r2) == 0);
	CHECK(r2.distance == P0F_DIST_UNKNOWN);

	/* Full-width strings go out unterminated and come back intact. */
	strcpy(r.os_name, FULL32);
	p0f_response_encode(&r, again);
	CHECK(memcmp(again + 40, FULL32, 32) == 0 && again[72] == '2');
	CHECK(p0f_response_decode(again, sizeof again, &r2) == 0);
	CHECK(strcmp(r2.os_name, FULL32) == 0 && strcmp(r2.os_flavor, "2.2.x-3.x") == 0);

	/* A non-ok reply is all zero past the status. */
	r.status = P0F_STATUS_NOMATCH;
	p0f_response_encode(&r, again);
	CHECK(get32(again, 0) == P0F_RESP_MAGIC && get32(again, 4) == 0x20);
	CHECK(all_zero(again + 8, P0F_RESP_LEN - 8));
}

/* ---- v2 ---------------------------------------------------------------------- */

static void test_v2_query(void)
{
	struct p0f2_query q, back;
	uint8_t b[P0F2_QUERY_LEN + 1];
	static const uint8_t src[4] = { 192, 0, 2, 7 }, dst[4] = { 198, 51, 100, 25 };

	memset(&q, 0, sizeof q);
	q.type = 1;
	q.id = 0x11223344u;
	memcpy(q.src_ad, src, 4);
	memcpy(q.dst_ad, dst, 4);
	q.src_port = 40000;
	q.dst_port = 25;
	memset(b, 0xAA, sizeof b);
	p0f2_query_encode(&q, b);
	CHECK(P0F2_QUERY_LEN == 24);
	CHECK(get32(b, 0) == 0x0defacedu);
	CHECK(b[4] == 1);
	CHECK(all_zero(b + 5, 3)); /* padding */
	CHECK(get32(b, 8) == 0x11223344u);
	CHECK(memcmp(b + 12, src, 4) == 0); /* network order: bytes as written */
	CHECK(memcmp(b + 16, dst, 4) == 0);
	CHECK(get16(b, 20) == 40000); /* host order */
	CHECK(get16(b, 22) == 25);
	CHECK(b[24] == 0xAA);

	CHECK(p0f2_query_decode(b, P0F2_QUERY_LEN, &back) == 0);
	CHECK(back.type == 1 && back.id == 0x11223344u);
	CHECK(memcmp(back.src_ad, src, 4) == 0 && memcmp(back.dst_ad, dst, 4) == 0);
	CHECK(back.src_port == 40000 && back.dst_port == 25);
	CHECK(p0f2_query_decode(b, P0F2_QUERY_LEN - 1, &back) == EINVAL);
	CHECK(p0f2_query_decode(b, P0F2_QUERY_LEN + 1, &back) == EINVAL);
	put32(b, 0, P0F_QUERY_MAGIC);
	CHECK(p0f2_query_decode(b, P0F2_QUERY_LEN, &back) == EINVAL);
}

static void make_v2_reply(uint8_t *b, uint8_t type)
{
	memset(b, 0, P0F2_RESP_LEN);
	put32(b, 0, 0x0defacedu);
	put32(b, 4, 0xcafef00du);        /* id */
	b[8] = type;
	memcpy(b + 9, "Linux", 5);        /* genre[20] */
	memcpy(b + 29, "2.6 (newer, 1)", 14); /* detail[40] */
	b[69] = 12;                       /* dist (s8) */
	memcpy(b + 70, "ethernet/modem", 14); /* link[30] */
	memcpy(b + 100, "low latency", 11);   /* tos[30] */
	b[130] = 1;                       /* fw */
	b[131] = 0;                       /* nat */
	b[132] = 1;                       /* real */
	b[133] = 0x77;                    /* padding: ignored */
	put16(b, 134, (uint16_t)-7);      /* score (s16) */
	put16(b, 136, 0xbeef);            /* mflags (u16) */
	b[138] = 0x77;                    /* padding */
	b[139] = 0x77;
	put32(b, 140, 4321);              /* uptime hours (s32) */
}

static void test_v2_reply(void)
{
	uint8_t b[P0F2_RESP_LEN + 1], again[P0F2_RESP_LEN];
	struct p0f2_response r, r2;
	static const uint8_t types[3] = { 0, 1, 2 };
	static const char *const names[3] = { "ok", "badquery", "nomatch" };
	int i;

	CHECK(P0F2_RESP_LEN == 144);
	make_v2_reply(b, 0);
	CHECK(p0f2_response_decode(b, P0F2_RESP_LEN, &r) == 0);
	CHECK(r.id == 0xcafef00du);
	CHECK(r.type == P0F2_OK);
	CHECK(strcmp(r.genre, "Linux") == 0);
	CHECK(strcmp(r.detail, "2.6 (newer, 1)") == 0);
	CHECK(r.dist == 12);
	CHECK(strcmp(r.link, "ethernet/modem") == 0);
	CHECK(strcmp(r.tos, "low latency") == 0);
	CHECK(r.fw == 1 && r.nat == 0 && r.real == 1);
	CHECK(r.score == -7);
	CHECK(r.mflags == 0xbeef);
	CHECK(r.uptime == 4321);

	for (i = 0; i < 3; i++) {
		make_v2_reply(b, types[i]);
		CHECK(p0f2_response_decode(b, P0F2_RESP_LEN, &r) == 0);
		CHECK(r.type == types[i] && strcmp(p0f2_type_name(r.type), names[i]) == 0);
		CHECK(r.id == 0xcafef00du);
	}

	/* Negative markers: dist -1, score -100, uptime -1. */
	make_v2_reply(b, 0);
	b[69] = 0xff;
	put16(b, 134, (uint16_t)-100);
	put32(b, 140, 0xffffffffu);
	CHECK(p0f2_response_decode(b, P0F2_RESP_LEN, &r) == 0);
	CHECK(r.dist == -1 && r.score == -100 && r.uptime == -1);

	/* Full-width strings (20, 40, 30, 30 bytes) without terminators. */
	make_v2_reply(b, 0);
	memcpy(b + 9, "ABCDEFGHIJKLMNOPQRST", 20);
	memcpy(b + 29, "0123456789012345678901234567890123456789", 40);
	memcpy(b + 70, "abcdefghijklmnopqrstuvwxyz0123", 30);
	memcpy(b + 100, "ABCDEFGHIJKLMNOPQRSTUVWXYZ4567", 30);
	CHECK(p0f2_response_decode(b, P0F2_RESP_LEN, &r) == 0);
	CHECK(strcmp(r.genre, "ABCDEFGHIJKLMNOPQRST") == 0);
	CHECK(strcmp(r.detail, "0123456789012345678901234567890123456789") == 0);
	CHECK(strcmp(r.link, "abcdefghijklmnopqrstuvwxyz0123") == 0);
	CHECK(strcmp(r.tos, "ABCDEFGHIJKLMNOPQRSTUVWXYZ4567") == 0);

	/* Round trip through the encoder. */
	p0f2_response_encode(&r, again);
	CHECK(p0f2_response_decode(again, sizeof again, &r2) == 0);
	CHECK(memcmp(&r, &r2, sizeof r) == 0);
	CHECK(memcmp(again + 9, b + 9, 124) == 0 && again[133] == 0);

	/* Rejects: unknown type, bad magic, wrong lengths. */
	make_v2_reply(b, 3);
	CHECK(p0f2_response_decode(b, P0F2_RESP_LEN, &r) == EPROTO);
	CHECK(p0f2_type_name(3) == NULL);
	make_v2_reply(b, 0);
	put32(b, 0, P0F_RESP_MAGIC);
	CHECK(p0f2_response_decode(b, P0F2_RESP_LEN, &r) == EPROTO);
	make_v2_reply(b, 0);
	b[P0F2_RESP_LEN] = 0;
	CHECK(p0f2_response_decode(b, 0, &r) == EPROTO);
	CHECK(p0f2_response_decode(b, P0F2_RESP_LEN - 1, &r) == EPROTO);
	CHECK(p0f2_response_decode(b, P0F2_RESP_LEN + 1, &r) == EPROTO);
	/* A v3 reply is not a v2 one, even cut to the v2 length. */
	{
		uint8_t v3[P0F_RESP_LEN];
		make_reply(v3, 0x10);
		CHECK(p0f2_response_decode(v3, P0F2_RESP_LEN, &r) == EPROTO);
	}
}

int main(void)
{
	test_query_ipv4();
	test_query_ipv6();
	test_query_rejects();
	test_query_decode();
	test_format();
	test_scope();
	test_reply_ok();
	test_reply_other_statuses();
	test_reply_rejects();
	test_reply_strings();
	test_reply_distance();
	test_reply_round_trip();
	test_v2_query();
	test_v2_reply();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}

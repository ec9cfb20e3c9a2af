/*
 * p0f_codec: see p0f_codec.h. Every field is read and written at the offset
 * the p0f sources use (api.h); integers are in host order, as the daemon is
 * always on the same machine (the API socket is a local UNIX socket).
 */
#include "p0f_codec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

/* ---- byte helpers ----------------------------------------------------- */

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static uint16_t get_u16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, sizeof v); }
static void put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, sizeof v); }

/* Copy a fixed-size wire string that may lack its NUL. */
static void get_str(char *dst, const uint8_t *src, size_t width)
{
	size_t n = 0;
	while (n < width && src[n] != 0)
		n++;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* strncpy semantics on the wire: pad with NULs, no terminator when full. */
static void put_str(uint8_t *dst, const char *src, size_t width)
{
	size_t n = strnlen(src, width);
	memcpy(dst, src, n);
	memset(dst + n, 0, width - n);
}

/* ---- addresses -------------------------------------------------------- */

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int p0f_addr_parse(const char *text, size_t len, struct p0f_addr *out)
{
	char buf[P0F_ADDR_TEXT_MAX];
	uint8_t b6[16];

	/* Longer than any address, or an embedded NUL: not an address. */
	if (text == NULL || len == 0 || len >= sizeof buf || memchr(text, '\0', len))
		return EINVAL;
	memcpy(buf, text, len);
	buf[len] = '\0';

	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, buf, out->bytes) == 1) {
		out->family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, b6) == 1) {
		if (memcmp(b6, v4mapped_prefix, sizeof v4mapped_prefix) == 0) {
			out->family = 4;
			memcpy(out->bytes, b6 + 12, 4);
		} else {
			out->family = 6;
			memcpy(out->bytes, b6, 16);
		}
		return 0;
	}
	return EINVAL;
}

int p0f_addr_format(const struct p0f_addr *addr, char *out, size_t outlen)
{
	int af;

	if (addr->family == 4)
		af = AF_INET;
	else if (addr->family == 6)
		af = AF_INET6;
	else
		return EINVAL;
	if (outlen > (size_t)(socklen_t)-1 ||
	    inet_ntop(af, addr->bytes, out, (socklen_t)outlen) == NULL)
		return EINVAL;
	return 0;
}

enum p0f_scope p0f_addr_scope(const struct p0f_addr *a)
{
	const uint8_t *b = a->bytes;
	static const uint8_t zero[16];

	if (a->family == 4) {
		if (b[0] == 127)
			return P0F_SCOPE_LOOPBACK;
		if (b[0] == 0)
			return P0F_SCOPE_UNSPECIFIED;
		if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
		    (b[0] == 192 && b[1] == 168) || (b[0] == 100 && (b[1] & 0xc0) == 64))
			return P0F_SCOPE_PRIVATE;
		if (b[0] == 169 && b[1] == 254)
			return P0F_SCOPE_LINKLOCAL;
		return P0F_SCOPE_PUBLIC;
	}
	if (memcmp(b, zero, 15) == 0) {
		if (b[15] == 1)
			return P0F_SCOPE_LOOPBACK;
		if (b[15] == 0)
			return P0F_SCOPE_UNSPECIFIED;
	}
	if ((b[0] & 0xfe) == 0xfc)
		return P0F_SCOPE_PRIVATE;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return P0F_SCOPE_LINKLOCAL;
	return P0F_SCOPE_PUBLIC;
}

const char *p0f_scope_name(enum p0f_scope scope)
{
	switch (scope) {
	case P0F_SCOPE_PUBLIC: return "public";
	case P0F_SCOPE_LOOPBACK: return "loopback";
	case P0F_SCOPE_PRIVATE: return "private";
	case P0F_SCOPE_LINKLOCAL: return "linklocal";
	case P0F_SCOPE_UNSPECIFIED: return "unspecified";
	}
	return "public";
}

/* ---- v3 ------------------------------------------------------------------ */

void p0f_query_encode(const struct p0f_addr *addr, uint8_t out[P0F_QUERY_LEN])
{
	put_u32(out, P0F_QUERY_MAGIC);
	out[4] = addr->family;
	memcpy(out + 5, addr->bytes, 16);
	if (addr->family == 4)
		memset(out + 9, 0, 12);
}

int p0f_query_from_text(const char *text, size_t len, uint8_t out[P0F_QUERY_LEN])
{
	struct p0f_addr a;
	int rc = p0f_addr_parse(text, len, &a);

	if (rc == 0)
		p0f_query_encode(&a, out);
	return rc;
}

int p0f_query_decode(const uint8_t *buf, size_t len, struct p0f_addr *out)
{
	if (len != P0F_QUERY_LEN || get_u32(buf) != P0F_QUERY_MAGIC)
		return EINVAL;
	if (buf[4] != 4 && buf[4] != 6)
		return EINVAL;
	memset(out, 0, sizeof *out);
	out->family = buf[4];
	memcpy(out->bytes, buf + 5, out->family == 4 ? 4 : 16);
	return 0;
}

const char *p0f_status_name(uint32_t status)
{
	switch (status) {
	case P0F_STATUS_OK: return "ok";
	case P0F_STATUS_NOMATCH: return "nomatch";
	case P0F_STATUS_BADQUERY: return "badquery";
	}
	return NULL;
}

int p0f_response_decode(const uint8_t *buf, size_t len, struct p0f_response *r)
{
	int16_t dist;

	if (len != P0F_RESP_LEN || get_u32(buf) != P0F_RESP_MAGIC)
		return EPROTO;
	memset(r, 0, sizeof *r);
	r->status = get_u32(buf + 4);
	if (p0f_status_name(r->status) == NULL)
		return EPROTO;
	r->distance = P0F_DIST_UNKNOWN;
	if (r->status != P0F_STATUS_OK)
		return 0;

	r->first_seen = get_u32(buf + 8);
	r->last_seen = get_u32(buf + 12);
	r->total_conn = get_u32(buf + 16);
	r->uptime_min = get_u32(buf + 20);
	r->up_mod_days = get_u32(buf + 24);
	r->last_nat = get_u32(buf + 28);
	r->last_chg = get_u32(buf + 32);
	/* p0f stores an unknown distance as a u8 -1, so it arrives as 255. */
	dist = (int16_t)get_u16(buf + 36);
	r->distance = (dist < 0 || dist >= 255) ? P0F_DIST_UNKNOWN : dist;
	r->bad_sw = buf[38];
	r->os_match_q = buf[39];
	get_str(r->os_name, buf + 40, P0F_STR_LEN);
	get_str(r->os_flavor, buf + 72, P0F_STR_LEN);
	get_str(r->http_name, buf + 104, P0F_STR_LEN);
	get_str(r->http_flavor, buf + 136, P0F_STR_LEN);
	get_str(r->link_type, buf + 168, P0F_STR_LEN);
	get_str(r->language, buf + 200, P0F_STR_LEN);
	return 0;
}

void p0f_response_encode(const struct p0f_response *r, uint8_t out[P0F_RESP_LEN])
{
	memset(out, 0, P0F_RESP_LEN);
	put_u32(out, P0F_RESP_MAGIC);
	put_u32(out + 4, r->status);
	if (r->status != P0F_STATUS_OK)
		return;
	put_u32(out + 8, r->first_seen);
	put_u32(out + 12, r->last_seen);
	put_u32(out + 16, r->total_conn);
	put_u32(out + 20, r->uptime_min);
	put_u32(out + 24, r->up_mod_days);
	put_u32(out + 28, r->last_nat);
	put_u32(out + 32, r->last_chg);
	put_u16(out + 36, (uint16_t)(r->distance < 0 || r->distance > 255 ? 255 : r->distance));
	out[38] = r->bad_sw;
	out[39] = r->os_match_q;
	put_str(out + 40, r->os_name, P0F_STR_LEN);
	put_str(out + 72, r->os_flavor, P0F_STR_LEN);
	put_str(out + 104, r->http_name, P0F_STR_LEN);
	put_str(out + 136, r->http_flavor, P0F_STR_LEN);
	put_str(out + 168, r->link_type, P0F_STR_LEN);
	put_str(out + 200, r->language, P0F_STR_LEN);
}

/* ---- v2 ------------------------------------------------------------------ */

void p0f2_query_encode(const struct p0f2_query *q, uint8_t out[P0F2_QUERY_LEN])
{
	memset(out, 0, P0F2_QUERY_LEN);
	put_u32(out, P0F2_MAGIC);
	out[4] = q->type;
	put_u32(out + 8, q->id);
	memcpy(out + 12, q->src_ad, 4);
	memcpy(out + 16, q->dst_ad, 4);
	put_u16(out + 20, q->src_port);
	put_u16(out + 22, q->dst_port);
}

int p0f2_query_decode(const uint8_t *buf, size_t len, struct p0f2_query *q)
{
	if (len != P0F2_QUERY_LEN || get_u32(buf) != P0F2_MAGIC)
		return EINVAL;
	memset(q, 0, sizeof *q);
	q->type = buf[4];
	q->id = get_u32(buf + 8);
	memcpy(q->src_ad, buf + 12, 4);
	memcpy(q->dst_ad, buf + 16, 4);
	q->src_port = get_u16(buf + 20);
	q->dst_port = get_u16(buf + 22);
	return 0;
}

const char *p0f2_type_name(uint8_t type)
{
	switch (type) {
	case P0F2_OK: return "ok";
	case P0F2_BADQUERY: return "badquery";
	case P0F2_NOMATCH: return "nomatch";
	}
	return NULL;
}

int p0f2_response_decode(const uint8_t *buf, size_t len, struct p0f2_response *r)
{
	if (len != P0F2_RESP_LEN || get_u32(buf) != P0F2_MAGIC)
		return EPROTO;
	memset(r, 0, sizeof *r);
	r->id = get_u32(buf + 4);
	r->type = buf[8];
	if (p0f2_type_name(r->type) == NULL)
		return EPROTO;
	get_str(r->genre, buf + 9, 20);
	get_str(r->detail, buf + 29, 40);
	r->dist = (int8_t)buf[69];
	get_str(r->link, buf + 70, 30);
	get_str(r->tos, buf + 100, 30);
	r->fw = buf[130];
	r->nat = buf[131];
	r->real = buf[132];
	r->score = (int16_t)get_u16(buf + 134);
	r->mflags = get_u16(buf + 136);
	r->uptime = (int32_t)get_u32(buf + 140);
	return 0;
}

void p0f2_response_encode(const struct p0f2_response *r, uint8_t out[P0F2_RESP_LEN])
{
	memset(out, 0, P0F2_RESP_LEN);
	put_u32(out, P0F2_MAGIC);
	put_u32(out + 4, r->id);
	out[8] = r->type;
	put_str(out + 9, r->genre, 20);
	put_str(out + 29, r->detail, 40);
	out[69] = (uint8_t)(int8_t)r->dist;
	put_str(out + 70, r->link, 30);
	put_str(out + 100, r->tos, 30);
	out[130] = r->fw;
	out[131] = r->nat;
	out[132] = r->real;
	put_u16(out + 134, (uint16_t)r->score);
	put_u16(out + 136, r->mflags);
	put_u32(out + 140, (uint32_t)r->uptime);
}

/*
 * p0f_codec: the p0f query API on the wire, and nothing else.
 *
 * Pure functions over caller-provided buffers: no Lua, no I/O, no allocation,
 * no global state. Everything is laid out by explicit offsets (never by a C
 * struct), because the daemon reads exactly 21 bytes per v3 query and any
 * other length desynchronises its stream for good.
 *
 * Errors are errno values: EINVAL (not an address / bad argument) and EPROTO
 * (a reply that is not a well-formed p0f reply).
 */
#ifndef P0F_CODEC_H
#define P0F_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* ---- addresses -------------------------------------------------------- */

#define P0F_ADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN, including the NUL */

struct p0f_addr {
	uint8_t family;     /* 4 or 6 (p0f's addr_type) */
	uint8_t bytes[16];  /* network order; IPv4 in the first 4 bytes, rest 0 */
};

/* Where an address lives; the plugin layer's skip rules use it. */
enum p0f_scope {
	P0F_SCOPE_PUBLIC = 0,
	P0F_SCOPE_LOOPBACK,    /* 127/8, ::1 */
	P0F_SCOPE_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7 */
	P0F_SCOPE_LINKLOCAL,   /* 169.254/16, fe80::/10 */
	P0F_SCOPE_UNSPECIFIED  /* 0.0.0.0/8, :: */
};

/*
 * Parse an address given as text of `len` bytes (no NUL needed). Accepts
 * dotted IPv4 and every IPv6 spelling inet_pton accepts; an IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d) comes out as IPv4, because p0f stores such
 * hosts as IPv4. Returns 0 or EINVAL.
 */
int p0f_addr_parse(const char *text, size_t len, struct p0f_addr *out);

/* Canonical text (inet_ntop) into out[P0F_ADDR_TEXT_MAX]. Returns 0 or EINVAL. */
int p0f_addr_format(const struct p0f_addr *addr, char *out, size_t outlen);

enum p0f_scope p0f_addr_scope(const struct p0f_addr *addr);
const char *p0f_scope_name(enum p0f_scope scope);

/* ---- v3 (p0f 3.x) ----------------------------------------------------- */

#define P0F_QUERY_MAGIC 0x50304601u
#define P0F_RESP_MAGIC 0x50304602u
#define P0F_QUERY_LEN 21
#define P0F_RESP_LEN 232
#define P0F_STR_LEN 32

enum p0f_status {
	P0F_STATUS_BADQUERY = 0x00,
	P0F_STATUS_OK = 0x10,
	P0F_STATUS_NOMATCH = 0x20
};

#define P0F_MATCH_FUZZY 0x01
#define P0F_MATCH_GENERIC 0x02
#define P0F_DIST_UNKNOWN (-1)

/* A decoded reply. Strings are always NUL-terminated here (the wire form
 * is not when a value fills all 32 bytes). */
struct p0f_response {
	uint32_t status;
	uint32_t first_seen, last_seen, total_conn;
	uint32_t uptime_min, up_mod_days;
	uint32_t last_nat, last_chg;
	int distance;       /* hops, or P0F_DIST_UNKNOWN */
	uint8_t bad_sw, os_match_q;
	char os_name[P0F_STR_LEN + 1];
	char os_flavor[P0F_STR_LEN + 1];
	char http_name[P0F_STR_LEN + 1];
	char http_flavor[P0F_STR_LEN + 1];
	char link_type[P0F_STR_LEN + 1];
	char language[P0F_STR_LEN + 1];
};

/* 21 query bytes for an address. */
void p0f_query_encode(const struct p0f_addr *addr, uint8_t out[P0F_QUERY_LEN]);

/* Text address straight to query bytes. Returns 0 or EINVAL. */
int p0f_query_from_text(const char *text, size_t len, uint8_t out[P0F_QUERY_LEN]);

/* The reverse, for fake servers and tests: 0 or EINVAL (bad magic/type). */
int p0f_query_decode(const uint8_t *buf, size_t len, struct p0f_addr *out);

/*
 * Decode a reply. `len` must be exactly P0F_RESP_LEN and the magic and
 * status known, else EPROTO (the stream it came from cannot be trusted).
 * Fields other than status are zero unless the status is OK, as in p0f.
 */
int p0f_response_decode(const uint8_t *buf, size_t len, struct p0f_response *out);

/* Build the wire form of a reply (for fake servers, caches and tests). The
 * distance is sent as 255 when unknown, as the daemon does. */
void p0f_response_encode(const struct p0f_response *r, uint8_t out[P0F_RESP_LEN]);

const char *p0f_status_name(uint32_t status); /* "ok", "nomatch", "badquery" or NULL */

/* ---- v2 (p0f 2.0.x, legacy) ------------------------------------------- */

#define P0F2_MAGIC 0x0defacedu
#define P0F2_QUERY_LEN 24
#define P0F2_RESP_LEN 144

enum p0f2_type { P0F2_OK = 0, P0F2_BADQUERY = 1, P0F2_NOMATCH = 2 };

struct p0f2_query {
	uint8_t type;          /* 1 = fingerprint, 2 = status */
	uint32_t id;
	uint8_t src_ad[4], dst_ad[4]; /* network order */
	uint16_t src_port, dst_port;
};

struct p0f2_response {
	uint32_t id;
	uint8_t type;                  /* enum p0f2_type */
	char genre[21], detail[41];
	int dist;                      /* -1 unknown */
	char link[31], tos[31];
	uint8_t fw, nat, real;
	int16_t score;                 /* -100 = none */
	uint16_t mflags;
	int32_t uptime;                /* hours, -1 unknown */
};

void p0f2_query_encode(const struct p0f2_query *q, uint8_t out[P0F2_QUERY_LEN]);
int p0f2_query_decode(const uint8_t *buf, size_t len, struct p0f2_query *out);
int p0f2_response_decode(const uint8_t *buf, size_t len, struct p0f2_response *out);
void p0f2_response_encode(const struct p0f2_response *r, uint8_t out[P0F2_RESP_LEN]);
const char *p0f2_type_name(uint8_t type);

#endif

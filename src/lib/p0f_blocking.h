/*
 * One query, one connection, one deadline (connect + write + read). For
 * scripts and command-line tools; busy programs use p0f_client directly.
 */
#ifndef P0F_BLOCKING_H
#define P0F_BLOCKING_H

#include "p0f_client.h"

/* Step the client, blocking in poll(), until query `h` has finished; its
 * outcome is in *out and also returned (0 or an errno value). */
int p0f_client_await(struct p0f_client *c, uint64_t h, struct p0f_result *out);

/* v3: 0 and *out filled, or an errno value (EINVAL for a bad address).
 * After a timeout the late reply is still awaited for up to `drain`
 * seconds before the socket is closed, so p0f never writes into it. */
int p0f_query_once(const char *path, const char *addr, size_t len,
                   double timeout, double drain, struct p0f_result *out);

/* v2 (p0f 2.0.x, -Q socket): one query per connection; the daemon closes. */
int p0f2_query_once(const char *path, const struct p0f2_query *q, double timeout,
                    struct p0f2_response *out);

#endif

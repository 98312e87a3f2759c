/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* RFC 4648 base64 with padding (what etcd's JSON gateway uses for keys and values). */
char *base64_encode(const void *data, size_t len);
/* Strict: only the alphabet and correct padding. -EINVAL when malformed. The result is NUL-terminated. */
int base64_decode(const char *s, char **ret, size_t *ret_len);

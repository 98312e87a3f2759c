/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len) {
        const uint8_t *p = data;
        char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < len ? p[i + 2] : 0);
                *o++ = alphabet[v >> 18 & 63];
                *o++ = alphabet[v >> 12 & 63];
                *o++ = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
                *o++ = i + 2 < len ? alphabet[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

static int value_of(char c) {
        const char *p = c ? strchr(alphabet, c) : NULL;
        return p ? (int)(p - alphabet) : -1;
}

int base64_decode(const char *s, char **ret, size_t *ret_len) {
        size_t n = strlen(s);
        if (n % 4)
                return -EINVAL;
        char *out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i += 4) {
                int a = value_of(s[i]), b = value_of(s[i + 1]), c = s[i + 2] == '=' ? -2 : value_of(s[i + 2]),
                    d = s[i + 3] == '=' ? -2 : value_of(s[i + 3]);
                bool last = i + 4 == n;
                if (a < 0 || b < 0 || c == -1 || d == -1 || ((c == -2 || d == -2) && !last) || (c == -2 && d != -2)) {
                        free(out);
                        return -EINVAL;
                }
                uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)(c < 0 ? 0 : c) << 6 | (uint32_t)(d < 0 ? 0 : d);
                out[k++] = (char)(v >> 16);
                if (c >= 0)
                        out[k++] = (char)(v >> 8 & 0xff);
                if (d >= 0)
                        out[k++] = (char)(v & 0xff);
        }
        out[k] = '\0';
        *ret = out;
        if (ret_len)
                *ret_len = k;
        return 0;
}

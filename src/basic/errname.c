/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "errname.h"
#include "fileio.h"
#include "macro.h"

static const struct {
        int error;
        const char *name;
} table[] = {
        {EPERM, "EPERM"},   {ENOENT, "ENOENT"}, {EIO, "EIO"},         {ENXIO, "ENXIO"},
        {E2BIG, "E2BIG"},   {EBADF, "EBADF"},   {EAGAIN, "EAGAIN"},   {ENOMEM, "ENOMEM"},
        {EACCES, "EACCES"}, {EFAULT, "EFAULT"}, {EBUSY, "EBUSY"},     {EEXIST, "EEXIST"},
        {EXDEV, "EXDEV"},   {ENODEV, "ENODEV"}, {ENOTDIR, "ENOTDIR"}, {EISDIR, "EISDIR"},
        {EINVAL, "EINVAL"}, {ENFILE, "ENFILE"}, {EMFILE, "EMFILE"},   {ENOTTY, "ENOTTY"},
        {EFBIG, "EFBIG"},   {ENOSPC, "ENOSPC"}, {EROFS, "EROFS"},     {ERANGE, "ERANGE"},
        {EDEADLK, "EDEADLK"}, {ENOSYS, "ENOSYS"}, {ENOTSUP, "EOPNOTSUPP"}, {EUSERS, "EUSERS"},
        {ETIMEDOUT, "ETIMEDOUT"}, {EALREADY, "EALREADY"}, {EINPROGRESS, "EINPROGRESS"},
        {ENOTCONN, "ENOTCONN"}, {ECANCELED, "ECANCELED"}, {ENOMEDIUM, "ENOMEDIUM"},
        {ENODATA, "ENODATA"}, {EPROTO, "EPROTO"}, {EOVERFLOW, "EOVERFLOW"}, {ENOLCK, "ENOLCK"},
};

const char *errno_to_name(int error) {
        if (error < 0)
                error = -error;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].error == error)
                        return table[i].name;
        return NULL;
}

int errno_from_name(const char *name) {
        if (isempty(name))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcasecmp(table[i].name, name) == 0)
                        return table[i].error;
        if (streq(name, "ENOTSUP"))
                return ENOTSUP;
        uint32_t v;
        if (parse_u32(name, 10, &v) == 0 && v > 0 && v < 4096)
                return (int)v;
        return -EINVAL;
}

const char *errno_message(int error) {
        return strerror(error < 0 ? -error : error);
}

char *errno_describe(int error) {
        const char *n = errno_to_name(error);
        return strdup_printf("%s (%s)", errno_message(error), n ?: "?");
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* errno <-> symbolic name ("EBUSY"); positive values. NULL / -EINVAL when unknown. */
const char *errno_to_name(int error);
int errno_from_name(const char *name);

/* "Device or resource busy (EBUSY)": the message and the name, for errors that name the errno. */
char *errno_describe(int error);

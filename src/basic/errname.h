/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* errno <-> symbolic name ("EBUSY"); positive values. NULL / -EINVAL when unknown. */
const char *errno_to_name(int error);
int errno_from_name(const char *name);

/* The one errno formatter. errno_message(): the message alone ("Device or resource busy"; either sign; a
 * static string, never NULL). errno_describe(): the message and the name, "Device or resource busy (EBUSY)",
 * allocated (NULL on ENOMEM), for errors that name the errno. */
const char *errno_message(int error);
char *errno_describe(int error);

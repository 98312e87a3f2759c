/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* errno <-> symbolic name ("EBUSY"); positive values. NULL / -EINVAL when unknown. */
const char *errno_to_name(int error);
int errno_from_name(const char *name);

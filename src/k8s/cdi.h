/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "basic/gverror.h"
#include "core/host/root.h"

/* Container Device Interface specs on the host: etc/cdi and var/run/cdi under the root, *.json, *.yaml and
 * *.yml, each {"kind": "vendor.com/class", "devices": [{"name": ...}, ...], ...}. ret: the fully qualified
 * names ("nvidia.com/gpu=0", "nvidia.com/gpu=GPU-..."), sorted, NULL-terminated; a spec that does not parse
 * is skipped with a warning naming it (FILE:LINE:COL). -ENOMEM only. */
int cdi_device_names(Root *root, char ***ret);

/* One spec (path: .json, else YAML): its names appended to l (n entries). A spec that does not parse, has no
 * kind or devices, a kind that is not CDI's "vendor/class" or a device whose name CDI would refuse: -EINVAL (a
 * parse error: the loader's -errno) with err "FILE[:LINE:COL]: reason", and l as it was. */
int cdi_spec_names(const char *path, char ***l, size_t *n, GvError *err);
bool cdi_kind_valid(const char *kind) _pure_;
bool cdi_device_name_valid(const char *name) _pure_;

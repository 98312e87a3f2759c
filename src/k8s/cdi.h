/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "core/host/root.h"

/* Container Device Interface specs on the host: etc/cdi and var/run/cdi under the root, *.json, *.yaml and
 * *.yml, each {"kind": "vendor.com/class", "devices": [{"name": ...}, ...], ...}. ret: the fully qualified
 * names ("nvidia.com/gpu=0", "nvidia.com/gpu=GPU-..."), sorted, NULL-terminated; a spec that does not parse
 * is skipped with a warning naming it (FILE:LINE:COL). -ENOMEM only. */
int cdi_device_names(Root *root, char ***ret);

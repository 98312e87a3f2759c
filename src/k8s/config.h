/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "basic/gverror.h"
#include "core/host/root.h"
#include "k8s/resources.h"

/* The plugin's configuration file under the root (docs/k8s.md), YAML through basic/yamldoc:
 *   mig-strategy: none|single|mixed     containers: true|false      kubevirt: true|false
 *   create-mdevs: [TYPE, ...]           rescan-interval-ms: 100..3600000
 *   mig-config: FILE                    node-labels: FILE           (files under the root)
 * Every key is optional; what is absent keeps c's value (the defaults). */
#define PLUGIN_CONFIG_FILE "etc/gpuvirt/device-plugin.yaml"

/* -ENOENT (err without a message) when the file is absent; a bad file: -EINVAL, err "FILE:LINE:COL: reason",
 * and c unchanged. */
int plugin_config_load(Root *root, const char *file, PluginConfig *c, GvError *err);
void plugin_config_done(PluginConfig *c);

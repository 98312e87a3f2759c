/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "core/host/names.h"
#include "core/host/pci.h"

/*
 * The inventory model: what `gpuvirt list` and `show` print. The JSON object is the one model; the
 * text tables are rendered from it, so text and JSON cannot drift.
 */

/* Display-class physical devices ("GPUs"); VFs only when include_vfs. */
bool inventory_is_gpu(const PciDevice *d, bool include_vfs);

/* Full description of one device. */
int inventory_device(const PciHost *h, PciNames *names, const PciDevice *d, json_object **ret);
/* Array of inventory_device() for every GPU. */
int inventory_list(const PciHost *h, PciNames *names, bool include_vfs, json_object **ret);

/* Fill modes.mig of the device objects from what NVML reports (capable, enabled, pending, instances).
 * Devices NVML does not know keep the device-ID answer. */
struct MigGpu;
void inventory_add_mig(json_object *list_or_device, const struct MigGpu *gpus, size_t n);

/* Whether the device ID is a MIG-capable NVIDIA GPU (A100, A30, H100, H200, ...). */
bool nvidia_mig_capable(uint16_t vendor, uint16_t device);

/* Why the device cannot go to a VM by passthrough now, or NULL when it can. */
char *passthrough_blocker(const PciHost *h, const PciDevice *d);

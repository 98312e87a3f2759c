/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Dynamic MIG from Kubernetes: a node label (nvidia.com/mig.config, as NVIDIA's mig-manager reads it)
 * naming a configuration of a mig-parted file, applied with the least disruption through core's MIG apply,
 * never touching a unit allocated to a pod: allocated MIG devices are pinned where they are (kept with their
 * UUIDs), and a configuration that cannot keep them, or that would put an allocated whole GPU into MIG
 * mode, is refused before anything changes.
 */

#include "basic/gverror.h"
#include "core/host/root.h"

#define MIG_CONFIG_LABEL "nvidia.com/mig.config"
#define KUBELET_CHECKPOINT "var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"
#define MIG_CONFIG_STATE_FILE "run/gpuvirt/k8s-mig-config.json"

/* The value of key in a labels file in the downward API's format (one `key="value"` line per label, the
 * value quoted as Go quotes strings), under the root. -ENOENT when the file or the key is absent; a
 * malformed line: -EINVAL, err "FILE:LINE:COL: reason". */
int node_label_read(Root *root, const char *file, const char *key, char **ret, GvError *err);

/* The device IDs allocated to pods in kubelet's checkpoint (Data.PodDeviceEntries[].DeviceIDs, a list or a
 * map of NUMA node to list as kubelet 1.20 and later write it). -ENOENT without a checkpoint; a damaged one:
 * -EBADMSG with err. ret: a NULL-terminated list (may be empty). */
int kubelet_checkpoint_ids(Root *root, char ***ret, GvError *err);

/* Apply configuration label of the mig-parted file (a path under the root) to the host's GPUs, keeping every
 * ID of allocated. 0: applied (or already so); -EBUSY: refused for an allocated unit, nothing changed, err
 * says which; -EINVAL: the file or label is bad; other -errno: NVML or the apply failed (err). */
int k8s_mig_apply(Root *root, const char *file, const char *label, char *const *allocated, GvError *err);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The messages kubelet sends the device plugin: AllocateRequest and PreferredAllocationRequest, through
 * protobuf-c's unpack (k8s/messages.c) and the plugin's checks of what they ask (resource_allocate(), resource_preferred()),
 * against a fixed set of resources of every kind (whole GPUs, MIG devices, vfio-pci devices, mdevs). The first
 * byte picks the message (bit 0) and the resource asked of (bits 1-2); the rest is the message as on the wire.
 * A message that unpacks packs again to bytes that unpack and pack the same. Each request is answered exactly
 * when the checks below, made here on their own, say it is valid; a refusal is -EINVAL with a reason; an answer
 * gives the container the IDs asked for (Allocate) or a choice of size distinct available IDs holding every
 * must-include one (GetPreferredAllocation). */
#include <string.h>

#include "basic/fileio.h"
#include "fuzz.h"
#include "k8s/messages.h"
#include "k8s/resources.h"

static ResourceSet set;

static void add(Resource *r, const char *id, const char *gpu, int numa, int group, unsigned mig_start, int index,
                const char *type) {
        PluginDevice *n = realloc(r->devices, (r->n_devices + 1) * sizeof(PluginDevice));
        FUZZ_CHECK(n);
        r->devices = n;
        n[r->n_devices++] = (PluginDevice) {
                .id = strdup(id), .gpu = strdup(gpu), .numa_node = numa, .iommu_group = group, .healthy = true,
                .mig_start = mig_start, .mig_size = type ? 0 : 1, .nvml_index = index,
                .mdev_type = type ? strdup(type) : NULL};
}

/* what a dgx-a100 with MIG and vfio-pci GPUs and a T4 with vGPU offer, resources and devices sorted */
static void set_init(void) {
        if (set.resources)
                return;
        set.resources = calloc(4, sizeof(Resource));
        FUZZ_CHECK(set.resources);
        set.n_resources = 4;
        Resource *r = set.resources;
        r[0] = (Resource) {.name = strdup("nvidia.com/GA100_A100_SXM4_40GB"), .endpoint = strdup("p"), .kind = RESOURCE_PCI};
        add(&r[0], "0000:47:00.0", "0000:47:00.0", 0, 40, 0, -1, NULL);
        add(&r[0], "0000:4e:00.0", "0000:4e:00.0", 1, 41, 0, -1, NULL);
        r[1] = (Resource) {.name = strdup("nvidia.com/GRID_T4-2Q"), .endpoint = strdup("v"), .kind = RESOURCE_MDEV};
        add(&r[1], "1b6e0d2a-0b5e-4a69-a2c9-2f3f8f1e0001", "0000:3b:00.0", 0, 50, 0, -1, "nvidia-231");
        add(&r[1], "1b6e0d2a-0b5e-4a69-a2c9-2f3f8f1e0002", "0000:3b:00.0", 0, 51, 0, -1, "nvidia-231");
        add(&r[1], "1b6e0d2a-0b5e-4a69-a2c9-2f3f8f1e0003", "0000:3c:00.0", 1, 52, 0, -1, "nvidia-231");
        r[2] = (Resource) {.name = strdup("nvidia.com/gpu"), .endpoint = strdup("g"), .kind = RESOURCE_GPU};
        add(&r[2], "GPU-0a1b2c3d-0000-0000-0000-000000000000", "0000:07:00.0", 0, -1, 0, 0, NULL);
        add(&r[2], "GPU-0a1b2c3d-0000-0000-0000-000000000001", "0000:0f:00.0", 0, -1, 0, 1, NULL);
        add(&r[2], "GPU-0a1b2c3d-0000-0000-0000-000000000002", "0000:87:00.0", 1, -1, 0, 2, NULL);
        r[3] = (Resource) {.name = strdup("nvidia.com/mig-1g.5gb"), .endpoint = strdup("m"), .kind = RESOURCE_MIG};
        for (unsigned i = 0; i < 7; i++) {
                char id[64];
                snprintf(id, sizeof id, "MIG-5f2a1c3e-0000-0000-0000-00000000000%u", i);
                add(&r[3], id, i < 4 ? "0000:b7:00.0" : "0000:bd:00.0", i < 4 ? 1 : 0, -1, i % 4, -1, NULL);
        }
        size_t n = 0;
        FUZZ_CHECK(strv_push(&set.cdi, &n, strdup("nvidia.com/gpu=0")) == 0);
        FUZZ_CHECK(strv_push(&set.cdi, &n, strdup("nvidia.com/gpu=GPU-0a1b2c3d-0000-0000-0000-000000000002")) == 0);
        FUZZ_CHECK(strv_push(&set.cdi, &n, strdup("nvidia.com/gpu=MIG-5f2a1c3e-0000-0000-0000-000000000003")) == 0);
}

static bool in(char *const *l, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

static bool distinct(char *const *l, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (in(l, i, l[i]))
                        return false;
        return true;
}

static bool all_of(const Resource *r, char *const *l, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bool found = false;
                for (size_t j = 0; j < r->n_devices && !found; j++)
                        found = streq(r->devices[j].id, l[i]);
                if (!found)
                        return false;
        }
        return true;
}

/* pack m, unpack the bytes, pack again: the same bytes */
static void repack(const ProtobufCMessage *m) {
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *b = malloc(len ?: 1);
        FUZZ_CHECK(b);
        FUZZ_CHECK(protobuf_c_message_pack(m, b) == len);
        ProtobufCMessage *m2 = protobuf_c_message_unpack(m->descriptor, NULL, len, b);
        FUZZ_CHECK(m2);
        size_t len2 = protobuf_c_message_get_packed_size(m2);
        uint8_t *b2 = malloc(len2 ?: 1);
        FUZZ_CHECK(b2);
        FUZZ_CHECK(protobuf_c_message_pack(m2, b2) == len2);
        FUZZ_CHECK(len == len2 && memcmp(b, b2, len) == 0);
        protobuf_c_message_free_unpacked(m2, NULL);
        free(b);
        free(b2);
}

static const char *env(const ContainerAlloc *a, const char *name) {
        for (size_t i = 0; i < a->n_env; i++)
                if (streq(a->env[i].name, name))
                        return a->env[i].value;
        return NULL;
}

static void allocate(const Resource *r, const uint8_t *msg, size_t len) {
        V1beta1__AllocateRequest *req = allocate_request_unpack(msg, len);
        if (!req) /* the plugin answers INVALID_ARGUMENT */
                return;
        repack(&req->base);
        for (size_t i = 0; i < req->n_container_requests; i++) {
                const V1beta1__ContainerAllocateRequest *cr = req->container_requests[i];
                char **ids = cr->devicesids;
                size_t n = cr->n_devicesids;
                bool valid = n >= 1 && n <= r->n_devices && distinct(ids, n) && all_of(r, ids, n);
                ContainerAlloc a = {};
                bool created = false;
                GvError err = {};
                int q = resource_allocate(fuzz_root(), &set, r, ids, n, &a, &created, &err);
                FUZZ_CHECK(q == 0 || q == -ENOMEM || (q == -EINVAL && err.message && *err.message));
                FUZZ_CHECK((q == 0) == valid || q == -ENOMEM);
                FUZZ_CHECK(!created); /* no instance here is one to create */
                gv_error_done(&err);
                if (q < 0)
                        continue;
                /* the IDs, in the order asked, in the variable of the kind */
                _cleanup_free_ char *joined = NULL;
                for (size_t j = 0; j < n; j++) {
                        char *s = strdup_printf("%s%s%s", joined ?: "", j ? "," : "", ids[j]);
                        FUZZ_CHECK(s);
                        free(joined);
                        joined = s;
                }
                if (r->kind == RESOURCE_GPU || r->kind == RESOURCE_MIG) {
                        FUZZ_CHECK(streq(env(&a, "NVIDIA_VISIBLE_DEVICES") ?: "", joined));
                        for (size_t j = 0; j < a.n_cdi; j++)
                                FUZZ_CHECK(strv_contains(set.cdi, a.cdi[j]));
                } else {
                        _cleanup_free_ char *var = resource_env_name(r->kind == RESOURCE_PCI ? "PCI_RESOURCE_"
                                                                                              : "MDEV_PCI_RESOURCE_",
                                                                     r->name);
                        FUZZ_CHECK(var && streq(env(&a, var) ?: "", joined));
                        /* the VFIO container and each device's own group */
                        FUZZ_CHECK(a.n_devices == n + 1 && streq(a.devices[0].host_path, "/dev/vfio/vfio"));
                }
                container_alloc_done(&a);
        }
        v1beta1__allocate_request__free_unpacked(req, NULL);
}

static void preferred(const Resource *r, const uint8_t *msg, size_t len) {
        V1beta1__PreferredAllocationRequest *req = preferred_request_unpack(msg, len);
        if (!req)
                return;
        repack(&req->base);
        for (size_t i = 0; i < req->n_container_requests; i++) {
                const V1beta1__ContainerPreferredAllocationRequest *q = req->container_requests[i];
                char **av = q->available_deviceids, **must = q->must_include_deviceids;
                size_t n_av = q->n_available_deviceids, n_must = q->n_must_include_deviceids;
                bool valid = q->allocation_size >= 0 && (size_t) q->allocation_size >= n_must &&
                             (size_t) q->allocation_size <= n_av && all_of(r, av, n_av) && distinct(av, n_av) &&
                             distinct(must, n_must);
                for (size_t j = 0; j < n_must; j++)
                        valid = valid && in(av, n_av, must[j]);
                _cleanup_strv_free_ char **out = NULL;
                GvError err = {};
                int k = resource_preferred(r, av, n_av, must, n_must, q->allocation_size, &out, &err);
                FUZZ_CHECK(k == 0 || k == -ENOMEM || (k == -EINVAL && err.message && *err.message));
                FUZZ_CHECK((k == 0) == valid || k == -ENOMEM);
                gv_error_done(&err);
                if (k < 0)
                        continue;
                size_t n_out = strv_length(out);
                FUZZ_CHECK(n_out == (size_t) q->allocation_size && distinct(out, n_out));
                for (size_t j = 0; j < n_out; j++)
                        FUZZ_CHECK(in(av, n_av, out[j]));
                for (size_t j = 0; j < n_must; j++)
                        FUZZ_CHECK(in(out, n_out, must[j]));
        }
        v1beta1__preferred_allocation_request__free_unpacked(req, NULL);
}

static void cleanup(void) {
        resource_set_done(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (!set.resources) {
                set_init();
                atexit(cleanup);
        }
        const Resource *r = &set.resources[(data[0] >> 1) % set.n_resources];
        if (data[0] & 1)
                preferred(r, data + 1, size - 1);
        else
                allocate(r, data + 1, size - 1);
        return 0;
}

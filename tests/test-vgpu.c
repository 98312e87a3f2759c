/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Mediated devices, mdevctl definitions and NVIDIA vendor vGPU on simulated hosts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vgpu-types.h"
#include "core/vgpu/vendor-vgpu.h"
#include "helpers.h"
#include "sim/sim.h"

#define T4   "0000:3b:00.0"
#define IGPU "0000:00:02.0"
#define H100 "0000:16:00.0"
#define U1   "3f1c4a52-7c2e-4b8a-9d0e-1a2b3c4d5e6f"
#define U2   "8e0c2a9b-1d4f-4e6a-8b7c-0f1e2d3c4b5a"

static void test_uuid(void **state) {
        char u[MDEV_UUID_STRLEN];
        assert_int_equal(mdev_uuid_parse("3F1C4A52-7C2E-4B8A-9D0E-1A2B3C4D5E6F", u), 0);
        assert_string_equal(u, U1);
        static const char *const bad[] = {"", "3f1c4a52", U1 "0", "3f1c4a52-7c2e-4b8a-9d0e_1a2b3c4d5e6f",
                                          "3f1c4a52-7c2e-4b8a-9d0e-1a2b3c4d5e6g", " 3f1c4a52-7c2e-4b8a-9d0e-1a2b3c4d5e6"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                assert_int_equal(mdev_uuid_parse(bad[i], u), -EINVAL);
        char g1[MDEV_UUID_STRLEN], g2[MDEV_UUID_STRLEN];
        assert_int_equal(mdev_uuid_generate(g1), 0);
        assert_int_equal(mdev_uuid_generate(g2), 0);
        assert_int_equal(mdev_uuid_parse(g1, u), 0);
        assert_string_equal(u, g1);
        assert_int_equal(g1[14], '4');
        assert_string_not_equal(g1, g2);
        assert_true(mdev_type_valid("i915-GVTg_V5_4"));
        assert_false(mdev_type_valid("../create"));
        assert_false(mdev_type_valid("a/b"));
        assert_false(mdev_type_valid(""));
}

/* Definition file names as mdevctl 1.2 reads them (its UUID parser), checked against Debian's mdevctl in
 * tests/cli/mdevctl.sh. */
static void test_definition_names(void **state) {
        char u[MDEV_UUID_STRLEN];
        static const char *const good[] = {"abcdef01-2345-4678-9abc-def012345678", "ABCDEF01-2345-4678-9ABC-DEF012345678",
                                           "abcdef0123454678abcdef0123456780" /* 32 digits */,
                                           "{abcdef01-2345-4678-9abc-def012345671}",
                                           "urn:uuid:abcdef01-2345-4678-9abc-def012345670"};
        static const char *const want[] = {"abcdef01-2345-4678-9abc-def012345678", "abcdef01-2345-4678-9abc-def012345678",
                                           "abcdef01-2345-4678-abcd-ef0123456780", "abcdef01-2345-4678-9abc-def012345671",
                                           "abcdef01-2345-4678-9abc-def012345670"};
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(mdev_definition_name_parse(good[i], u), 0);
                assert_string_equal(u, want[i]);
        }
        static const char *const bad[] = {"", "x", "abcdef01-2345-4678-9abc-def01234567", ".abcdef01-2345-4678-9abc-def012345678.swp",
                                          "{abcdef01-2345-4678-9abc-def012345678", "abcdef01-2345-4678-9abc-def01234567g",
                                          "urn:uuid:abcdef0123454678abcdef0123456780", "abcdef01-2345-4678-9abcdef012345-67",
                                          "{abcdef0123454678abcdef0123456782}", "URN:UUID:abcdef01-2345-4678-9abc-def012345683"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(mdev_definition_name_parse(bad[i], u), -EINVAL);
}

/* The one resolver of a vGPU type named by a user: id or name (any case), mdev or vendor. */
static void test_type_resolve(void **state) {
        TestHost t;
        test_host_open(&t, "t4-grid");
        VgpuTypeRef r;
        GvError err = {};
        static const char *const t4[] = {"nvidia-230", "GRID T4-1Q", "grid t4-1q"};
        for (size_t i = 0; i < ELEMENTSOF(t4); i++) {
                assert_int_equal(vgpu_type_resolve(t.root, "0000:3b:00.0", t4[i], &r, &err), 0);
                assert_int_equal(r.kind, VGPU_TYPE_MDEV);
                assert_string_equal(r.id, "nvidia-230");
                assert_string_equal(r.name, "GRID T4-1Q");
                assert_int_equal(r.max_instances, 16);
                vgpu_type_ref_done(&r);
        }
        assert_int_equal(vgpu_type_resolve(t.root, "0000:3b:00.0", "GRID T4-99Q", &r, &err), -ENOENT);
        assert_non_null(strstr(err.message, "has no vGPU type 'GRID T4-99Q'"));
        assert_int_equal(err.error, ENOENT);
        assert_string_equal(err.device, "0000:3b:00.0");
        gv_error_done(&err);
        assert_int_equal(vgpu_type_resolve(t.root, "0000:00:00.0", "nvidia-230", &r, &err), -ENODEV);
        gv_error_done(&err);
        test_host_close(&t);

        test_host_open(&t, "h100");
        static const char *const h[] = {"1047", "NVIDIA H100-10C", "nvidia h100-10c"};
        for (size_t i = 0; i < ELEMENTSOF(h); i++) {
                /* on the PF (the types its free VFs offer) and on one VF */
                assert_int_equal(vgpu_type_resolve(t.root, "0000:16:00.0", h[i], &r, &err), 0);
                assert_int_equal(r.kind, VGPU_TYPE_VENDOR);
                assert_string_equal(r.id, "1047");
                vgpu_type_ref_done(&r);
                assert_int_equal(vgpu_type_resolve(t.root, "0000:16:00.4", h[i], &r, &err), 0);
                assert_string_equal(r.id, "1047");
                vgpu_type_ref_done(&r);
        }
        assert_int_equal(vgpu_type_resolve(t.root, "0000:16:00.0", "NVIDIA H100-99C", &r, &err), -ENOENT);
        gv_error_done(&err);
        test_host_close(&t);
}

static void test_definition_parse(void **state) {
        char *type = NULL, *start = NULL;
        MdevAttr *a = NULL;
        size_t n = 0;
        GvError err = {};
        static const char good[] = "{\"mdev_type\":\"nvidia-63\",\"start\":\"auto\",\"attrs\":[{\"b\":\"2\"},"
                                   "{\"nvidia/vgpu_params\":\"1\"}]}";
        assert_int_equal(mdev_definition_parse("d", good, strlen(good), &type, &start, &a, &n, &err), 0);
        assert_string_equal(type, "nvidia-63");
        assert_string_equal(start, "auto");
        assert_int_equal(n, 2);
        /* order kept: attrs are written in the listed order */
        assert_string_equal(a[0].name, "b");
        assert_string_equal(a[1].name, "nvidia/vgpu_params");
        assert_string_equal(a[1].value, "1");
        free(type);
        free(start);
        mdev_attrs_free(a, n);
        /* start defaults to manual, attrs may be absent */
        static const char small[] = "{\"mdev_type\":\"mbochs-small\"}";
        assert_int_equal(mdev_definition_parse("d", small, strlen(small), &type, &start, &a, &n, &err), 0);
        assert_string_equal(start, "manual");
        assert_int_equal(n, 0);
        free(type);
        free(start);
        mdev_attrs_free(a, n);
        static const char *const bad[] = {
                "", "[]", "{\"start\":\"auto\"}", "{\"mdev_type\":5}", "{\"mdev_type\":\"x\",\"start\":\"boot\"}",
                "{\"mdev_type\":\"x\",\"attrs\":{}}", "{\"mdev_type\":\"x\",\"attrs\":[{\"a\":\"1\",\"b\":\"2\"}]}",
                "{\"mdev_type\":\"x\",\"attrs\":[{\"../remove\":\"1\"}]}", "{\"mdev_type\":\"x\",\"attrs\":[{\"/sys/x\":\"1\"}]}",
                "{\"mdev_type\":\"x\",\"attrs\":[{\"nvidia/../../remove\":\"1\"}]}", "{\"mdev_type\":\"../x\"}"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                assert_int_equal(mdev_definition_parse("d", bad[i], strlen(bad[i]), &type, &start, &a, &n, &err), -EBADMSG);
                assert_non_null(startswith(err.message, "d:"));
                gv_error_done(&err);
        }
}

static MdevDevice *find(MdevDevice *l, size_t n, const char *uuid) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i].uuid, uuid))
                        return &l[i];
        return NULL;
}

static void test_t4_create_remove(void **state) {
        TestHost t;
        test_host_open(&t, "t4-grid");
        char *parent = NULL;
        GvError err = {};
        assert_int_equal(mdev_parent_resolve(t.root, "3B:00.0", &parent), 0);
        assert_string_equal(parent, T4);
        free(parent);
        assert_int_equal(mdev_parent_resolve(t.root, "0000:00:00.0", &parent), -ENODEV);
        assert_int_equal(mdev_parent_resolve(t.root, "../x", &parent), -EINVAL);

        assert_int_equal(mdev_create(t.root, T4, "nvidia-231", U1, NULL, 0, &err), 0);
        assert_int_equal(err.error, 0);
        assert_true(root_exists(t.root, "sys/bus/mdev/devices/%s", U1));
        /* the same UUID again, on another type: EEXIST from our check */
        assert_int_equal(mdev_create(t.root, T4, "nvidia-231", U1, NULL, 0, &err), -EEXIST);
        assert_non_null(strstr(err.message, "already in use"));
        assert_int_equal(err.error, EEXIST);
        assert_string_equal(err.device, T4);
        assert_string_equal(err.step, "create");
        gv_error_done(&err);
        /* NVIDIA: one type per GPU */
        assert_int_equal(mdev_create(t.root, T4, "nvidia-232", U2, NULL, 0, &err), -EINVAL);
        assert_non_null(strstr(err.message, "one type per GPU"));
        gv_error_done(&err);
        assert_false(root_exists(t.root, "sys/bus/mdev/devices/%s", U2));
        /* unknown type */
        assert_int_equal(mdev_create(t.root, T4, "nvidia-999", U2, NULL, 0, &err), -ENOENT);
        gv_error_done(&err);
        /* a parent that is not one */
        assert_int_equal(mdev_create(t.root, "0000:00:00.0", "nvidia-231", U2, NULL, 0, &err), -ENODEV);
        gv_error_done(&err);

        MdevDevice *l = NULL;
        size_t n = 0;
        assert_int_equal(mdev_list(t.root, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_true(l[0].active);
        assert_false(l[0].defined);
        assert_string_equal(l[0].parent, T4);
        assert_string_equal(l[0].type, "nvidia-231");
        assert_true(l[0].iommu_group >= 0);
        assert_null(l[0].held_by);
        mdev_list_free(l, n);

        GvError ge = {};
        assert_int_equal(mdev_remove(t.root, U1, false, &ge), 0);
        assert_int_equal(ge.error, 0);
        assert_false(root_exists(t.root, "sys/bus/mdev/devices/%s", U1));
        assert_int_equal(mdev_remove(t.root, U1, false, &ge), -ENOENT);
        assert_int_equal(ge.error, ENOENT);
        assert_string_equal(ge.device, U1);
        gv_error_done(&ge);
        /* the other type is creatable now */
        assert_int_equal(mdev_create(t.root, T4, "nvidia-232", U2, NULL, 0, &err), 0);
        test_host_close(&t);
}

static void test_t4_exhaust_and_kernel_errnos(void **state) {
        TestHost t;
        test_host_open(&t, "t4-grid");
        GvError err = {};
        /* T4-16Q: one instance per GPU */
        assert_int_equal(mdev_create(t.root, T4, "nvidia-234", U1, NULL, 0, &err), 0);
        assert_int_equal(mdev_create(t.root, T4, "nvidia-234", U2, NULL, 0, &err), -EUSERS);
        assert_non_null(strstr(err.message, "no instance of nvidia-234 left"));
        gv_error_done(&err);
        assert_int_equal(mdev_remove(t.root, U1, false, NULL), 0);
        /* errnos the kernel returns after our checks pass become messages with the cause */
        assert_int_equal(sim_inject_fault(t.dir, "create", ENOSPC), 0);
        assert_int_equal(mdev_create(t.root, T4, "nvidia-234", U2, NULL, 0, &err), -ENOSPC);
        assert_non_null(strstr(err.message, "no instance"));
        gv_error_done(&err);
        assert_int_equal(sim_inject_fault(t.dir, "create", EINVAL), 0);
        assert_int_equal(mdev_create(t.root, T4, "nvidia-234", U2, NULL, 0, &err), -EINVAL);
        assert_non_null(strstr(err.message, "NVIDIA driver refused"));
        gv_error_done(&err);
        assert_int_equal(sim_inject_fault(t.dir, "create", EEXIST), 0);
        assert_int_equal(mdev_create(t.root, T4, "nvidia-234", U2, NULL, 0, &err), -EEXIST);
        gv_error_done(&err);
        assert_false(root_exists(t.root, "sys/bus/mdev/devices/%s", U2));
        test_host_close(&t);
}

static void test_attrs_rollback(void **state) {
        TestHost t;
        test_host_open(&t, "t4-grid");
        GvError err = {};
        /* vgpu_params exists on NVIDIA mdevs: written after create */
        MdevAttr ok[] = {{(char *)"nvidia/vgpu_params", (char *)"frame_rate_limiter=0"}};
        assert_int_equal(mdev_create(t.root, T4, "nvidia-230", U1, ok, 1, &err), 0);
        char *v = NULL;
        assert_int_equal(root_read_attr(t.root, &v, "sys/bus/mdev/devices/%s/nvidia/vgpu_params", U1), 0);
        assert_string_equal(v, "frame_rate_limiter=0");
        free(v);
        /* an attribute the device does not have: the device is removed again */
        MdevAttr bad[] = {{(char *)"no_such_attr", (char *)"1"}};
        assert_int_equal(mdev_create(t.root, T4, "nvidia-230", U2, bad, 1, &err), -ENOENT);
        assert_non_null(strstr(err.message, "removed again"));
        gv_error_done(&err);
        assert_false(root_exists(t.root, "sys/bus/mdev/devices/%s", U2));
        test_host_close(&t);
}

static void test_gvtg_budget_and_holders(void **state) {
        TestHost t;
        test_host_open(&t, "gvt-g");
        GvError err = {};
        /* GVT-g mixes types within one aperture budget */
        assert_int_equal(mdev_create(t.root, IGPU, "i915-GVTg_V5_4", U1, NULL, 0, &err), 0);
        assert_int_equal(mdev_create(t.root, IGPU, "i915-GVTg_V5_8", U2, NULL, 0, &err), 0);
        assert_int_equal(mdev_create(t.root, IGPU, "i915-GVTg_V5_1", "11111111-2222-4333-8444-555555555555", NULL, 0, &err),
                         -EUSERS);
        gv_error_done(&err);
        /* a VM holding the mdev's group: refused unless forced */
        MdevDevice *l = NULL;
        size_t n = 0;
        assert_int_equal(mdev_list(t.root, &l, &n), 0);
        int g = find(l, n, U1)->iommu_group;
        mdev_list_free(l, n);
        char *fd = root_path(t.root, "proc/77/fd"), *link = root_path(t.root, "proc/77/fd/3");
        char *target = strdup_printf("/dev/vfio/%d", g), *comm = root_path(t.root, "proc/77/comm");
        assert_int_equal(mkdir_p(fd, 0755), 0);
        assert_int_equal(symlink(target, link), 0);
        assert_int_equal(write_text(comm, "qemu-kvm\n"), 0);
        assert_int_equal(mdev_list(t.root, &l, &n), 0);
        assert_non_null(find(l, n, U1)->held_by);
        assert_non_null(strstr(find(l, n, U1)->held_by, "77 (qemu-kvm)"));
        assert_null(find(l, n, U2)->held_by);
        mdev_list_free(l, n);
        GvError ge = {};
        assert_int_equal(mdev_remove(t.root, U1, false, &ge), -EBUSY);
        assert_non_null(strstr(gv_error_message(&ge), "held open by 77"));
        /* what to type is the CLI's: core names no option, it says forcing would take it */
        assert_int_equal(ge.hint, GV_HINT_FORCE_BUSY);
        assert_null(strstr(gv_error_message(&ge), "--"));
        gv_error_done(&ge);
        assert_true(root_exists(t.root, "sys/bus/mdev/devices/%s", U1));
        assert_int_equal(mdev_remove(t.root, U1, true, &ge), 0);
        free(fd);
        free(link);
        free(target);
        free(comm);
        test_host_close(&t);
}

static void test_definitions(void **state) {
        TestHost t;
        test_host_open(&t, "gvt-g");
        MdevAttr attrs[] = {{(char *)"b", (char *)"2"}, {(char *)"a", (char *)"1"}};
        assert_int_equal(mdev_define(t.root, IGPU, U1, "i915-GVTg_V5_4", true, attrs, 2), 0);
        assert_int_equal(mdev_define(t.root, IGPU, U2, "i915-GVTg_V5_8", false, NULL, 0), 0);
        /* mdevctl's callouts and foreign files are not devices */
        char *sd = root_path(t.root, MDEVCTL_DIR "/scripts.d/callouts"), *junk = root_path(t.root, MDEVCTL_DIR "/%s/README", IGPU);
        assert_int_equal(mkdir_p(sd, 0755), 0);
        char *cf = strdup_printf("%s/" U1, sd);
        assert_int_equal(write_text(cf, "#!/bin/sh\n"), 0);
        assert_int_equal(write_text(junk, "x"), 0);
        MdevDevice *l = NULL;
        size_t n = 0;
        assert_int_equal(mdev_list(t.root, &l, &n), 0);
        assert_int_equal(n, 2);
        MdevDevice *d = find(l, n, U1);
        assert_false(d->active);
        assert_true(d->defined);
        assert_string_equal(d->start, "auto");
        assert_string_equal(d->type, "i915-GVTg_V5_4");
        assert_int_equal(d->n_attrs, 2);
        assert_string_equal(d->attrs[0].name, "b");
        assert_string_equal(find(l, n, U2)->start, "manual");
        mdev_list_free(l, n);
        /* the file is mdevctl's JSON */
        char *p = root_path(t.root, MDEVCTL_DIR "/%s/%s", IGPU, U1), *text = NULL;
        assert_int_equal(read_full(p, 4096, (void **)&text, NULL), 0);
        char *type = NULL, *start = NULL;
        MdevAttr *a = NULL;
        size_t na = 0;
        GvError err = {};
        assert_int_equal(mdev_definition_parse(p, text, strlen(text), &type, &start, &a, &na, &err), 0);
        assert_string_equal(type, "i915-GVTg_V5_4");
        free(type);
        free(start);
        mdev_attrs_free(a, na);
        free(text);
        free(p);
        /* started and defined: one entry */
        assert_int_equal(mdev_create(t.root, IGPU, "i915-GVTg_V5_4", U1, NULL, 0, &err), 0);
        assert_int_equal(mdev_list(t.root, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_true(find(l, n, U1)->active && find(l, n, U1)->defined);
        mdev_list_free(l, n);
        assert_int_equal(mdev_undefine(t.root, IGPU, U1), 0);
        assert_int_equal(mdev_undefine(t.root, IGPU, U2), 0);
        assert_int_equal(mdev_list(t.root, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_false(l[0].defined);
        mdev_list_free(l, n);
        free(sd);
        free(cf);
        free(junk);
        test_host_close(&t);
}

static unsigned current(TestHost *t, const char *vf) {
        char *s = NULL;
        uint32_t v = 99;
        assert_int_equal(root_read_attr(t->root, &s, "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", vf), 0);
        assert_int_equal(parse_u32(s, 10, &v), 0);
        free(s);
        return v;
}

static void test_vendor_vgpu(void **state) {
        TestHost t;
        test_host_open(&t, "h100");
        assert_true(vendor_vgpu_is_parent(t.root, H100));
        VendorVgpuAvail *av = NULL;
        size_t na = 0;
        assert_int_equal(vendor_vgpu_types(t.root, H100, &av, &na), 0);
        assert_int_equal(na, 8);
        assert_int_equal(av[0].id, 1044);
        assert_string_equal(av[0].name, "NVIDIA H100-4C");
        int free_vfs = av[0].available;
        assert_true(free_vfs > 2);
        vendor_vgpu_avail_free(av, na);

        char *vf = NULL;
        GvError err = {};
        unsigned type = 0;
        /* by name (case-insensitive), on the first free VF */
        assert_int_equal(vendor_vgpu_create(t.root, H100, "nvidia h100-10c", &vf, &type, &err), 0);
        assert_int_equal(type, 1047);
        assert_string_equal(vf, "0000:16:00.4");
        assert_int_equal(current(&t, vf), 1047);
        char *vf2 = NULL;
        assert_int_equal(vendor_vgpu_create(t.root, H100, "1047", &vf2, &type, &err), 0);
        assert_string_equal(vf2, "0000:16:00.5");
        /* one type per GPU */
        char *vf3 = NULL;
        assert_int_equal(vendor_vgpu_create(t.root, H100, "1044", &vf3, &type, &err), -EINVAL);
        assert_non_null(strstr(err.message, "one type per GPU"));
        assert_int_equal(err.error, EINVAL);
        assert_string_equal(err.device, H100);
        gv_error_done(&err);
        /* no such type (on the idle second GPU, where every type is listed) */
        assert_int_equal(vendor_vgpu_create(t.root, "0000:98:00.0", "NVIDIA H100-3C", &vf3, &type, &err), -ENOENT);
        gv_error_done(&err);

        VendorVgpuUnit *u = NULL;
        size_t nu = 0;
        assert_int_equal(vendor_vgpu_units(t.root, &u, &nu), 0);
        assert_int_equal(nu, 2);
        assert_true(u[0].managed && u[0].active);
        assert_string_equal(u[0].pf, H100);
        assert_string_equal(u[0].type_name, "NVIDIA H100-10C");
        vendor_vgpu_units_free(u, nu);

        /* a type set by someone else on another VF: listed as not managed, not released */
        assert_int_equal(root_write(t.root, "1047", "sys/bus/pci/devices/0000:16:01.1/nvidia/current_vgpu_type"), 0);
        GvError ge = {};
        assert_int_equal(vendor_vgpu_remove(t.root, "0000:16:01.1", false, &ge), -EPERM);
        assert_non_null(strstr(gv_error_message(&ge), "did not set"));
        assert_int_equal(ge.hint, GV_HINT_FORCE_CLEAR);
        assert_null(strstr(gv_error_message(&ge), "--"));
        gv_error_done(&ge);
        assert_int_equal(current(&t, "0000:16:01.1"), 1047);
        assert_int_equal(vendor_vgpu_units(t.root, &u, &nu), 0);
        assert_int_equal(nu, 3);
        for (size_t i = 0; i < nu; i++)
                assert_int_equal(u[i].managed, !streq(u[i].vf, "0000:16:01.1"));
        vendor_vgpu_units_free(u, nu);
        assert_int_equal(vendor_vgpu_remove(t.root, "0000:16:01.1", true, &ge), 0);

        assert_int_equal(vendor_vgpu_remove(t.root, vf, false, &ge), 0);
        assert_int_equal(current(&t, vf), 0);
        assert_false(root_exists(t.root, VENDOR_VGPU_STATE_DIR "/%s", vf));
        assert_int_equal(vendor_vgpu_remove(t.root, vf, false, &ge), -ENOENT);
        assert_int_equal(ge.hint, GV_HINT_NONE);
        gv_error_done(&ge);

        /* the VF was changed behind gpuvirt's back: release refuses, the other type stays */
        assert_int_equal(root_write(t.root, "0", "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", vf2), 0);
        assert_int_equal(root_write(t.root, "1044", "sys/bus/pci/devices/%s/nvidia/current_vgpu_type", vf2), 0);
        assert_int_equal(vendor_vgpu_remove(t.root, vf2, false, &ge), -EPERM);
        assert_non_null(strstr(gv_error_message(&ge), "not type 1047"));
        assert_int_equal(ge.hint, GV_HINT_FORCE_CLEAR);
        gv_error_done(&ge);
        assert_int_equal(current(&t, vf2), 1044);
        assert_int_equal(vendor_vgpu_remove(t.root, vf2, true, &ge), 0);
        assert_int_equal(current(&t, vf2), 0);

        /* definitions: start sets the type, a second start finds it active */
        assert_int_equal(vendor_vgpu_define(t.root, "0000:16:00.7", H100, 1047, true), 0);
        assert_int_equal(vendor_vgpu_start(t.root, "0000:16:00.7", &ge), 0);
        assert_int_equal(current(&t, "0000:16:00.7"), 1047);
        assert_int_equal(vendor_vgpu_start(t.root, "0000:16:00.7", &ge), 1);
        assert_int_equal(ge.error, 0);
        assert_int_equal(vendor_vgpu_define(t.root, "0000:16:01.0", H100, 1044, true), 0);
        assert_int_equal(vendor_vgpu_start(t.root, "0000:16:01.0", &ge), -EINVAL); /* the GPU runs 1047 */
        assert_int_equal(ge.error, EINVAL);
        assert_string_equal(ge.device, "0000:16:01.0");
        gv_error_done(&ge);
        assert_int_equal(current(&t, "0000:16:01.0"), 0);
        free(vf);
        free(vf2);
        test_host_close(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_uuid),
                cmocka_unit_test(test_definition_names),
                cmocka_unit_test(test_type_resolve),
                cmocka_unit_test(test_definition_parse),
                cmocka_unit_test(test_t4_create_remove),
                cmocka_unit_test(test_t4_exhaust_and_kernel_errnos),
                cmocka_unit_test(test_attrs_rollback),
                cmocka_unit_test(test_gvtg_budget_and_holders),
                cmocka_unit_test(test_definitions),
                cmocka_unit_test(test_vendor_vgpu),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

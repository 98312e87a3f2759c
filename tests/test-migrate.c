/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vm migrate --detach-reattach: the destination's equivalent device (pure, over made-up node devices and
 * domains) and the run's rollback paths, with each libvirt call replaced so that any one of them fails.
 * (libvirt's test driver has no hot-plug, no node device detach and no migration: tests/cli/migrate.sh runs
 * what it has.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "core/vm/migrate.h"

/* ---- the equivalent on the destination ---- */

#define T4 (0x10deu << 16 | 0x1eb8u)
#define T4_AUDIO (0x10deu << 16 | 0x10f8u)

static VirtPciNodedev nd(const char *name, uint8_t bus, uint8_t func, uint32_t id) {
        return (VirtPciNodedev){.name = (char *)name, .addr = {.bus = bus, .func = func}, .vendor = (uint16_t)(id >> 16),
                                .device = (uint16_t)(id & 0xffff)};
}

static Unit card(PciAddr *funcs, size_t n) {
        Unit u = {.kind = UNIT_PCI, .id = "0000:5e:00.0", .funcs = funcs, .n_funcs = n, .iommu_group = -1};
        return u;
}

static void test_equivalent_pci(void **state) {
        PciAddr f[] = {{.bus = 0x5e}};
        Unit u = card(f, 1);
        uint32_t ids[] = {T4};
        VirtPciNodedev devs[] = {nd("other_model", 0x10, 0, 0x10de1db6), nd("pci_0000_3b_00_0", 0x3b, 0, T4),
                                 nd("pci_0000_af_00_0", 0xaf, 0, T4)};
        HostdevRef used = {.type = HOSTDEV_TYPE_PCI, .addr = {.bus = 0x3b}};
        VirtDomain doms[] = {{.name = (char *)"web", .active = true, .live = {.hostdevs = &used, .n_hostdevs = 1}}};
        size_t idx[8];
        char *why = NULL;
        /* free: the first T4 not used by a domain there */
        assert_int_equal(migrate_find_equivalent(&u, ids, 0, 0, devs, 3, doms, 1, NULL, idx, &why), 0);
        assert_int_equal(idx[0], 2);
        /* ... and not one an earlier unit of the same move took */
        char *taken[] = {(char *)"pci_0000_af_00_0", NULL};
        assert_int_equal(migrate_find_equivalent(&u, ids, 0, 0, devs, 3, doms, 1, taken, idx, &why), -ENOENT);
        assert_string_equal(why, "0000:5e:00.0: every device 10de:1eb8 on the destination (2) is in use (0000:3b:00.0 by "
                                 "domain 'web')");
        free(why);
        /* used by the persistent definition of a stopped domain counts too */
        VirtDomain cfg[] = {{.name = (char *)"stopped", .config = {.hostdevs = &used, .n_hostdevs = 1}}};
        assert_int_equal(migrate_find_equivalent(&u, ids, 0, 0, devs, 2, cfg, 1, NULL, idx, &why), -ENOENT);
        assert_non_null(strstr(why, "by domain 'stopped'"));
        free(why);
        /* no such model at all */
        assert_int_equal(migrate_find_equivalent(&u, ids, 0, 0, devs, 1, NULL, 0, NULL, idx, &why), -ENOENT);
        assert_string_equal(why, "0000:5e:00.0: the destination has no device 10de:1eb8");
        free(why);
}

static void test_equivalent_card_and_vf(void **state) {
        /* GPU + HDMI audio: both functions, same numbers, same IDs */
        PciAddr f[] = {{.bus = 0x5e}, {.bus = 0x5e, .func = 1}};
        Unit u = card(f, 2);
        uint32_t ids[] = {T4, T4_AUDIO};
        VirtPciNodedev lone[] = {nd("pci_0000_3b_00_0", 0x3b, 0, T4), nd("pci_0000_af_00_0", 0xaf, 0, T4),
                                 nd("pci_0000_af_00_1", 0xaf, 1, T4_AUDIO)};
        size_t idx[8];
        char *why = NULL;
        assert_int_equal(migrate_find_equivalent(&u, ids, 0, 0, lone, 3, NULL, 0, NULL, idx, &why), 0);
        assert_int_equal(idx[0], 1); /* 3b has no audio function: not the same card */
        assert_int_equal(idx[1], 2);

        /* a VF: of the same model, under a PF of the same model; a PF of the same IDs is no VF */
        PciAddr vf[] = {{.bus = 0x16, .slot = 0, .func = 2}};
        Unit v = {.kind = UNIT_VF, .id = "0000:16:00.2", .funcs = vf, .n_funcs = 1, .iommu_group = -1};
        uint32_t vid[] = {0x1002686c};
        VirtPciNodedev devs[] = {nd("pf_other", 0x20, 0, 0x10026860), nd("vf_other", 0x20, 2, 0x1002686c),
                                 nd("pf_same", 0x30, 0, 0x10026864), nd("vf_same", 0x30, 2, 0x1002686c),
                                 nd("not_vf", 0x40, 2, 0x1002686c)};
        devs[1].is_vf = devs[3].is_vf = true;
        devs[1].pf = devs[0].addr;
        devs[3].pf = devs[2].addr;
        assert_int_equal(migrate_find_equivalent(&v, vid, 0x1002, 0x6864, devs, 5, NULL, 0, NULL, idx, &why), 0);
        assert_int_equal(idx[0], 3);
        assert_int_equal(migrate_find_equivalent(&v, vid, 0x1002, 0x6864, devs, 2, NULL, 0, NULL, idx, &why), -ENOENT);
        assert_string_equal(why, "0000:16:00.2: the destination has no VF 1002:686c of a 1002:6864 PF");
        free(why);
}

/* ---- the run, each libvirt call replaceable by a failure ---- */

static Virt *const SRC = (Virt *)1, *const DST = (Virt *)2;
static char calls[2048];
static unsigned fail_at; /* bit n set: the n-th call (1-based) fails */
static int n_calls;

static int record(Virt *v, const char *what, const char *arg) {
        n_calls++;
        size_t l = strlen(calls);
        snprintf(calls + l, sizeof calls - l, "%s%s %s %s", l ? "; " : "", v == SRC ? "src" : "dst", what, arg);
        return fail_at >> n_calls & 1 ? -EIO : 0;
}
static int f_unplug(Virt *v, const char *dom, const char *x) {
        return record(v, "unplug", x);
}
static int f_plug(Virt *v, const char *dom, const char *x) {
        return record(v, "plug", x);
}
static int f_migrate(Virt *src, Virt *dst, const MigratePlan *p, char **ret_error) {
        int r = record(src, "migrate", p->dest_uri);
        if (r < 0)
                *ret_error = strdup("migration failed: no");
        return r;
}
static int f_detach(Virt *v, const char *name) {
        return record(v, "detach", name);
}
static const char *f_error(const Virt *v) {
        return "refused";
}
static const MigrateOps FAKE = {f_unplug, f_plug, f_migrate, f_detach, f_error};

static char *L[] = {(char *)"A0", (char *)"A1", (char *)"nd-a", (char *)"DA", (char *)"B0", (char *)"nd-b", (char *)"DB"};

/* a domain with two vfio-pci units: A (two functions) and B, and an mdev that moves with the domain */
static void two_units(MigratePlan *p, MigrateUnit u[3]) {
        memset(u, 0, 3 * sizeof *u);
        *p = (MigratePlan){.domain = (char *)"train", .dest_uri = (char *)"qemu+ssh://b/system", .running = true,
                           .units = u, .n_units = 3, .migratable = true, .detach_reattach = true};
        snprintf(u[0].unit.id, sizeof u[0].unit.id, "0000:5e:00.0");
        u[0].reattach = true;
        u[0].src_elems = L, u[0].n_src_elems = 2;
        u[0].dest_nodedevs = L + 2, u[0].n_dest_nodedevs = 1;
        u[0].dest_elems = L + 3, u[0].n_dest_elems = 1;
        snprintf(u[0].dest_device, sizeof u[0].dest_device, "0000:3b:00.0");
        snprintf(u[1].unit.id, sizeof u[1].unit.id, "7d6f0b2e-51a4-4c2b-9d3e-0a1b2c3d4e5f");
        snprintf(u[2].unit.id, sizeof u[2].unit.id, "0000:af:00.0");
        u[2].reattach = true;
        u[2].src_elems = L + 4, u[2].n_src_elems = 1;
        u[2].dest_nodedevs = L + 5, u[2].n_dest_nodedevs = 1;
        u[2].dest_elems = L + 6, u[2].n_dest_elems = 1;
        snprintf(u[2].dest_device, sizeof u[2].dest_device, "0000:86:00.0");
}

#define CALL(n) (1u << (n))

static int run(unsigned fail, json_object **res, size_t *missing, char **err) {
        MigratePlan p;
        MigrateUnit u[3];
        two_units(&p, u);
        calls[0] = 0, n_calls = 0, fail_at = fail;
        *res = NULL, *missing = 0, *err = NULL;
        return migrate_run_detach_reattach(&FAKE, SRC, DST, &p, res, missing, err);
}

static const char *state_of(json_object *res, size_t i, const char *key) {
        json_object *v = json_object_object_get(json_object_array_get_idx(res, i), key);
        return v ? json_object_get_string(v) : NULL;
}

static void test_run_ok(void **state) {
        json_object *res;
        size_t missing;
        char *err;
        assert_int_equal(run(0, &res, &missing, &err), 0);
        assert_string_equal(calls, "src unplug A0; src unplug A1; src unplug B0; src migrate qemu+ssh://b/system; "
                                   "dst detach nd-a; dst plug DA; dst detach nd-b; dst plug DB");
        assert_int_equal(missing, 0);
        assert_int_equal(json_object_array_length(res), 2); /* the mdev is not one of them */
        assert_string_equal(state_of(res, 0, "state"), "replaced on the destination");
        assert_string_equal(state_of(res, 1, "destination_device"), "0000:86:00.0");
        json_object_put(res);
}

static void test_run_unplug_fails(void **state) {
        json_object *res;
        size_t missing;
        char *err;
        /* B's unplug fails: A's two functions go back, last first; nothing moves */
        assert_int_equal(run(CALL(3), &res, &missing, &err), -EIO);
        assert_string_equal(calls, "src unplug A0; src unplug A1; src unplug B0; src plug A1; src plug A0");
        assert_string_equal(err, "cannot hot-unplug 0000:af:00.0 from train on the source: refused");
        assert_string_equal(state_of(res, 0, "state"), "plugged back into the source domain");
        assert_string_equal(state_of(res, 1, "state"), "not touched");
        json_object_put(res);
        free(err);
        /* A's second function fails: its first goes back */
        assert_int_equal(run(CALL(2), &res, &missing, &err), -EIO);
        assert_string_equal(calls, "src unplug A0; src unplug A1; src plug A0");
        json_object_put(res);
        free(err);
}

static void test_run_migration_fails(void **state) {
        json_object *res;
        size_t missing;
        char *err;
        assert_int_equal(run(CALL(4), &res, &missing, &err), -EIO);
        assert_string_equal(calls, "src unplug A0; src unplug A1; src unplug B0; src migrate qemu+ssh://b/system; "
                                   "src plug B0; src plug A1; src plug A0");
        assert_string_equal(err, "migration failed: no");
        assert_string_equal(state_of(res, 0, "state"), "plugged back into the source domain");
        assert_string_equal(state_of(res, 1, "state"), "plugged back into the source domain");
        json_object_put(res);
        free(err);
        /* and a plug back that fails says which unit is missing from the source domain; the others still go back */
        assert_int_equal(run(CALL(4) | CALL(5), &res, &missing, &err), -EIO);
        assert_string_equal(calls, "src unplug A0; src unplug A1; src unplug B0; src migrate qemu+ssh://b/system; "
                                   "src plug B0; src plug A1; src plug A0");
        assert_string_equal(state_of(res, 0, "state"), "plugged back into the source domain");
        assert_string_equal(state_of(res, 1, "state"), "missing from the source domain");
        assert_string_equal(state_of(res, 1, "error"), "cannot plug 0000:af:00.0 back into train on the source: refused");
        json_object_put(res);
        free(err);
}

static void test_run_destination_plug_fails(void **state) {
        json_object *res;
        size_t missing;
        char *err;
        /* B's node device cannot be bound to vfio-pci there: the domain moved, A is in, B is missing */
        assert_int_equal(run(CALL(7), &res, &missing, &err), 0);
        assert_int_equal(missing, 1);
        assert_null(err);
        assert_string_equal(state_of(res, 0, "state"), "replaced on the destination");
        assert_string_equal(state_of(res, 1, "state"), "missing from the migrated domain");
        assert_string_equal(state_of(res, 1, "error"), "cannot bind it to vfio-pci (virNodeDeviceDetachFlags): refused");
        /* which device: what to type is the CLI's (verb-vm.c) */
        assert_string_equal(state_of(res, 1, "destination_device"), "0000:86:00.0");
        assert_null(json_object_object_get(json_object_array_get_idx(res, 1), "retry"));
        json_object_put(res);
        /* A's hot-plug fails: B is still tried */
        assert_int_equal(run(CALL(6), &res, &missing, &err), 0);
        assert_int_equal(missing, 1);
        assert_string_equal(state_of(res, 0, "error"), "cannot hot-plug it: refused");
        assert_string_equal(state_of(res, 1, "state"), "replaced on the destination");
        json_object_put(res);
}

static void test_run_refuses_blocked(void **state) {
        MigratePlan p;
        MigrateUnit u[3];
        two_units(&p, u);
        p.migratable = false;
        json_object *res = NULL;
        size_t missing = 0;
        char *err = NULL;
        calls[0] = 0;
        assert_int_equal(migrate_run_detach_reattach(&FAKE, SRC, DST, &p, &res, &missing, &err), -EPERM);
        assert_string_equal(calls, "");
        assert_null(res);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_equivalent_pci),
                cmocka_unit_test(test_equivalent_card_and_vf),
                cmocka_unit_test(test_run_ok),
                cmocka_unit_test(test_run_unplug_fails),
                cmocka_unit_test(test_run_migration_fails),
                cmocka_unit_test(test_run_destination_plug_fails),
                cmocka_unit_test(test_run_refuses_blocked),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

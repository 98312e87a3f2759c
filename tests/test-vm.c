/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM units and libvirt: domain XML edits, unit resolution on simulated hosts, and the round trip
 * through libvirt's test driver (in process: define, read back, redefine). */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "core/vm/agentchan.h"
#include "core/vm/attach.h"
#include "core/vm/holders.h"
#include "core/vm/hostdev.h"
#include "core/vgpu/mdev.h"
#include "core/vgpu/vendor-vgpu.h"
#include "core/vm/libvirt.h"
#include "core/vm/vmlist.h"
#include "helpers.h"

static const char *const DOMAIN_XML =
        "<domain type='kvm'><name>d</name><memory>1048576</memory><os><type>hvm</type></os>"
        "<features><acpi/><kvm><hidden state='on'/></kvm></features><devices>"
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0' bus='59' slot='0' function='1'/></source>"
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x10' function='0x0'/></hostdev>"
        "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>"
        "<address uuid='7D6F0B2E-51A4-4C2B-9D3E-0A1B2C3D4E5F'/></source></hostdev>"
        "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>"
        "<interface type='network'><source network='default'/>"
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x11' function='0x0'/></interface>"
        "</devices></domain>";

static void test_domain_xml(void **state) {
        DomainXmlInfo info;
        assert_int_equal(domain_xml_parse(DOMAIN_XML, &info), 0);
        assert_true(info.kvm_hidden);
        assert_int_equal(info.n_hostdevs, 2); /* usb is not ours */
        assert_int_equal(info.hostdevs[0].type, HOSTDEV_TYPE_PCI);
        assert_int_equal(info.hostdevs[0].addr.bus, 59); /* decimal accepted like libvirt does */
        assert_int_equal(info.hostdevs[0].addr.func, 1);
        assert_int_equal(info.hostdevs[1].type, HOSTDEV_TYPE_MDEV);
        assert_string_equal(info.hostdevs[1].uuid, "7d6f0b2e-51a4-4c2b-9d3e-0a1b2c3d4e5f");
        HostdevRef keep = info.hostdevs[1];
        domain_xml_info_done(&info);

        int slot;
        assert_int_equal(domain_xml_free_slot(DOMAIN_XML, &slot), 0);
        assert_int_equal(slot, 0x12); /* 0x10 and 0x11 are taken; the hostdev's <source> address is not a slot */

        char *added = NULL, *removed = NULL;
        assert_int_equal(domain_xml_add_hostdevs(DOMAIN_XML,
                                                 "<hostdev mode='subsystem' type='pci' managed='no'><source>"
                                                 "<address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>"
                                                 "</source></hostdev>\n",
                                                 &added),
                         0);
        assert_int_equal(domain_xml_parse(added, &info), 0);
        assert_int_equal(info.n_hostdevs, 3);
        assert_int_equal(info.hostdevs[2].addr.bus, 2);
        domain_xml_info_done(&info);
        size_t n = 99;
        assert_int_equal(domain_xml_remove_hostdevs(added, &keep, 1, &removed, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(domain_xml_parse(removed, &info), 0);
        assert_int_equal(info.n_hostdevs, 2);
        assert_int_equal(info.hostdevs[0].type, HOSTDEV_TYPE_PCI);
        assert_int_equal(info.hostdevs[1].type, HOSTDEV_TYPE_PCI);
        domain_xml_info_done(&info);
        char *el = NULL;
        assert_int_equal(domain_xml_hostdev_element(removed, &keep, &el), -ENOENT);
        HostdevRef first = {.type = HOSTDEV_TYPE_PCI, .addr = {.bus = 59, .func = 1}};
        assert_int_equal(domain_xml_hostdev_element(removed, &first, &el), 0);
        assert_non_null(strstr(el, "slot=\"0x10\"")); /* libxml2 writes double quotes */
        free(el);
        free(added);
        free(removed);

        assert_int_equal(domain_xml_parse("<domain><devices>", &info), -EBADMSG);
        assert_int_equal(domain_xml_parse("<node/>", &info), -EBADMSG);
        assert_int_equal(domain_xml_add_hostdevs("<domain/>", "<hostdev/>", &added), -EBADMSG);
}

static void test_units(void **state) {
        TestHost t;
        test_host_open(&t, "qemu-q35");
        Unit u;
        assert_int_equal(unit_resolve(t.root, t.host, "04:00.1", &u), 0);
        assert_int_equal(u.kind, UNIT_PCI);
        assert_string_equal(u.id, "0000:04:00.0"); /* named by function 0 whichever function was given */
        assert_int_equal(u.n_funcs, 2);
        assert_int_equal(u.funcs[1].func, 1);
        char *xml = unit_hostdev_xml(&u, 0x11);
        assert_non_null(strstr(xml, "slot='0x11' function='0x0' multifunction='on'"));
        assert_non_null(strstr(xml, "slot='0x11' function='0x1'/>"));
        free(xml);
        HostdevRef audio = {.type = HOSTDEV_TYPE_PCI, .addr = {.bus = 4, .func = 1}};
        HostdevRef other = {.type = HOSTDEV_TYPE_PCI, .addr = {.bus = 2}};
        assert_true(unit_matches(&u, &audio));
        assert_false(unit_matches(&u, &other));
        unit_done(&u);
        assert_int_equal(unit_resolve(t.root, t.host, "02:00.0", &u), 0);
        assert_int_equal(u.n_funcs, 1);
        xml = unit_hostdev_xml(&u, -1);
        assert_null(strstr(xml, "type='pci' domain")); /* no guest address: libvirt assigns one */
        free(xml);
        unit_done(&u);
        assert_int_equal(unit_resolve(t.root, t.host, "00:02.0", &u), -EPERM); /* root port */
        assert_int_equal(unit_resolve(t.root, t.host, "zz", &u), -EINVAL);
        assert_int_equal(unit_resolve(t.root, t.host, "0000:09:00.0", &u), -ENODEV);
        test_host_close(&t);

        /* NVIDIA vendor vGPU: a VF becomes a vendor_vgpu unit once a type is written */
        test_host_open(&t, "h100");
        assert_int_equal(unit_resolve(t.root, t.host, "16:00.4", &u), 0);
        assert_int_equal(u.kind, UNIT_VF);
        assert_string_equal(u.parent, "0000:16:00.0");
        unit_done(&u);
        char *vf = NULL;
        GvError err = {};
        unsigned set = 0;
        assert_int_equal(vendor_vgpu_create(t.root, "0000:16:00.4", "9999", &vf, &set, &err), -ENOENT); /* not creatable */
        assert_int_equal(err.error, ENOENT);
        assert_non_null(strstr(err.message, "type '9999' is not among the creatable vGPU types"));
        gv_error_done(&err);
        assert_int_equal(vendor_vgpu_create(t.root, "0000:16:00.4", "1046", &vf, &set, &err), 0);
        assert_string_equal(vf, "0000:16:00.4");
        assert_int_equal(set, 1046);
        free(vf);
        assert_int_equal(err.error, 0);
        assert_int_equal(unit_resolve(t.root, t.host, "16:00.4", &u), 0);
        assert_int_equal(u.kind, UNIT_VENDOR_VGPU);
        assert_string_equal(u.type, "1046");
        assert_string_equal(u.driver, "nvidia");
        VfioOptions o = {.settle_ms = 0};
        VfioReport rep;
        bool changed = true;
        assert_int_equal(unit_prepare(t.root, &u, &o, &rep, &changed), 0);
        assert_false(changed); /* the nvidia driver is its VFIO provider: no rebinding */
        vfio_report_done(&rep);
        assert_int_equal(unit_release(t.root, &u, &o, &rep), 0);
        vfio_report_done(&rep);
        unit_done(&u);
        char *type = NULL;
        assert_int_equal(root_read_attr(t.root, &type, "sys/bus/pci/devices/0000:16:00.4/nvidia/current_vgpu_type"), 0);
        assert_string_equal(type, "0");
        free(type);
        test_host_close(&t);

        /* mdev: created through the write path, resolved by UUID (any case), removed by release */
        test_host_open(&t, "t4-grid");
        char uuid[37];
        assert_int_equal(mdev_uuid_generate(uuid), 0);
        assert_true(uuid_is_valid(uuid));
        assert_int_equal(uuid[14], '4');
        GvError merr = {};
        assert_int_equal(mdev_create(t.root, "0000:3b:00.0", "nvidia-999", uuid, NULL, 0, &merr), -ENOENT);
        gv_error_done(&merr);
        assert_false(uuid_is_valid("not-a-uuid"));
        assert_int_equal(mdev_create(t.root, "0000:3b:00.0", "nvidia-222", uuid, NULL, 0, &merr), 0);
        gv_error_done(&merr);
        assert_int_equal(mdev_create(t.root, "0000:5e:00.0", "nvidia-222", uuid, NULL, 0, &merr), -EEXIST);
        gv_error_done(&merr);
        char upper[37];
        for (size_t i = 0; i < 37; i++)
                upper[i] = (char)toupper((unsigned char)uuid[i]);
        assert_int_equal(unit_resolve(t.root, t.host, upper, &u), 0);
        assert_int_equal(u.kind, UNIT_MDEV);
        assert_string_equal(u.id, uuid);
        assert_string_equal(u.parent, "0000:3b:00.0");
        assert_string_equal(u.type, "nvidia-222");
        assert_string_equal(u.driver, "nvidia");
        assert_true(u.iommu_group >= 0);
        xml = unit_hostdev_xml(&u, -1);
        char want[128];
        snprintf(want, sizeof want, "<address uuid='%s'/>", uuid);
        assert_non_null(strstr(xml, want));
        assert_non_null(strstr(xml, "type='mdev' model='vfio-pci'"));
        free(xml);
        assert_int_equal(unit_release(t.root, &u, &o, &rep), 0);
        vfio_report_done(&rep);
        unit_done(&u);
        assert_false(root_exists(t.root, "sys/bus/mdev/devices/%s", uuid));
        assert_int_equal(unit_resolve(t.root, t.host, uuid, &u), -ENODEV);
        test_host_close(&t);
}

/* A VF created without autoprobe has no driver; released it must leave vfio-pci. (On the real kernel it
 * ends with no driver, which vfio_disable must accept: that case is covered by tests/rig/vm.sh, the
 * simulator probes nvme onto the VF instead.) */
static void test_release_driverless_vf(void **state) {
        TestHost t;
        test_host_open(&t, "qemu-q35");
        assert_int_equal(root_write(t.root, "0", "sys/bus/pci/devices/0000:03:00.0/sriov_drivers_autoprobe"), 0);
        assert_int_equal(root_write(t.root, "1", "sys/bus/pci/devices/0000:03:00.0/sriov_numvfs"), 0);
        test_host_rescan(&t);
        Unit u;
        assert_int_equal(unit_resolve(t.root, t.host, "03:00.1", &u), 0);
        assert_int_equal(u.kind, UNIT_VF);
        assert_null(u.driver);
        VfioOptions o = {.settle_ms = 0};
        VfioReport rep;
        bool changed = false;
        assert_int_equal(unit_prepare(t.root, &u, &o, &rep, &changed), 0);
        assert_true(changed);
        vfio_report_done(&rep);
        int r = unit_release(t.root, &u, &o, &rep);
        if (r < 0)
                fprintf(stderr, "release: %s\n", rep.error.message ?: "?");
        assert_int_equal(r, 0);
        vfio_report_done(&rep);
        char *p = root_path(t.root, "sys/bus/pci/devices/0000:03:00.1/driver"), *drv = NULL;
        (void)readlink_base(p, &drv);
        assert_true(!drv || strcmp(drv, "vfio-pci") != 0);
        free(drv);
        free(p);
        unit_done(&u);
        test_host_close(&t);
}

static int count_refs(const char *xml, const Unit *u) {
        DomainXmlInfo info;
        assert_int_equal(domain_xml_parse(xml, &info), 0);
        int k = 0;
        for (size_t i = 0; i < info.n_hostdevs; i++)
                k += unit_matches(u, &info.hostdevs[i]);
        domain_xml_info_done(&info);
        return k;
}

/* The test driver keeps its state in the process: define, read back, redefine, all here. */
static void test_libvirt_roundtrip(void **state) {
        TestHost t;
        test_host_open(&t, "qemu-q35");
        Unit u;
        assert_int_equal(unit_resolve(t.root, t.host, "04:00.0", &u), 0);

        Virt *v = NULL;
        GvError err = {};
        assert_int_equal(virt_open("test:///default", &v, &err), 0);
        assert_int_equal(err.error, 0);
        assert_true(virt_lib_version(v) >= 1000000);
        bool active, persistent;
        assert_int_equal(virt_domain_state(v, "test", &active, &persistent), 0);
        assert_true(active && persistent);
        assert_int_equal(virt_domain_state(v, "nosuch", &active, &persistent), -ENOENT);
        /* libvirt's message reaches the caller only as a GvError: the caller's words, then libvirt's */
        assert_int_equal(virt_error_take(v, &err, -ENOENT, "nosuch", "Cannot look up '%s': ", "nosuch"), -ENOENT);
        assert_int_equal(err.error, ENOENT);
        assert_string_equal(err.device, "nosuch");
        assert_true(startswith(err.message, "Cannot look up 'nosuch': "));
        assert_non_null(strstr(err.message + strlen("Cannot look up 'nosuch': "), "nosuch"));
        assert_int_equal(virt_error_take(v, &err, ENOENT, NULL, NULL), -ENOENT); /* fmt NULL: libvirt's alone */
        assert_false(startswith(err.message, "Cannot"));
        assert_non_null(strstr(err.message, "nosuch"));
        gv_error_done(&err);

        char *orig = NULL, *edited = NULL, *back = NULL, *removed_xml = NULL;
        assert_int_equal(virt_domain_xml(v, "test", true, &orig), 0);
        assert_int_equal(count_refs(orig, &u), 0);
        int slot;
        assert_int_equal(domain_xml_free_slot(orig, &slot), 0);
        char *hd = unit_hostdev_xml(&u, slot);
        assert_int_equal(domain_xml_add_hostdevs(orig, hd, &edited), 0);
        assert_int_equal(virt_define(v, edited), 0);
        assert_int_equal(virt_domain_xml(v, "test", true, &back), 0);
        assert_int_equal(count_refs(back, &u), 2);
        /* libvirt kept our guest addressing and managed='no' */
        char want[96];
        snprintf(want, sizeof want, "slot='0x%02x' function='0x0' multifunction='on'", slot);
        assert_non_null(strstr(back, want));
        assert_non_null(strstr(back, "managed='no'"));

        /* libvirt's own schema accepts what it handed back */
        if (system("command -v virt-xml-validate >/dev/null") == 0) {
                char *dir = test_tmpdir();
                char *f = strdup_printf("%s/test.xml", dir);
                assert_int_equal(write_text(f, back), 0);
                char *cmd = strdup_printf("virt-xml-validate %s domain >/dev/null 2>&1", f);
                assert_int_equal(system(cmd), 0);
                free(cmd);
                free(f);
                test_tmpdir_remove(dir);
        }

        VirtDomain *doms = NULL;
        size_t nd = 0;
        assert_int_equal(virt_list_domains(v, &doms, &nd), 0);
        assert_int_equal(nd, 1);
        assert_string_equal(doms[0].name, "test");
        int k = 0;
        for (size_t i = 0; i < doms[0].config.n_hostdevs; i++)
                k += unit_matches(&u, &doms[0].config.hostdevs[i]);
        assert_int_equal(k, 2);
        virt_domains_free(doms, nd);

        /* the test driver has no hot-plug call: converted to -EOPNOTSUPP, nothing printed */
        char **el = NULL;
        size_t ne = 0;
        assert_int_equal(unit_hostdev_elements(&u, slot, &el, &ne), 0);
        assert_int_equal(ne, 2);
        assert_int_equal(virt_attach_live(v, "test", el[0]), -EOPNOTSUPP);
        strv_free(el);
        assert_int_equal(virt_define(v, "<domain type='test'><name>x</name></domain>"), -EINVAL);

        HostdevRef *refs = NULL;
        size_t nr = 0;
        assert_int_equal(unit_refs(&u, &refs, &nr), 0);
        size_t removed = 0;
        assert_int_equal(domain_xml_remove_hostdevs(back, refs, nr, &removed_xml, &removed), 0);
        assert_int_equal(removed, 2);
        assert_int_equal(virt_define(v, removed_xml), 0);
        free(back);
        assert_int_equal(virt_domain_xml(v, "test", true, &back), 0);
        assert_int_equal(count_refs(back, &u), 0);

        free(refs);
        free(hd);
        free(orig);
        free(edited);
        free(back);
        free(removed_xml);
        virt_close(v);
        unit_done(&u);
        test_host_close(&t);
}

static void test_connect(void **state) {
        unsetenv("LIBVIRT_DEFAULT_URI");
        assert_string_equal(virt_resolve_uri(NULL), "qemu:///system");
        setenv("LIBVIRT_DEFAULT_URI", "test:///default", 1);
        assert_string_equal(virt_resolve_uri(NULL), "test:///default");
        assert_string_equal(virt_resolve_uri("qemu:///session"), "qemu:///session");
        unsetenv("LIBVIRT_DEFAULT_URI");
        Virt *v = NULL;
        GvError err = {};
        assert_int_equal(virt_open("test:///nonexistent/node.xml", &v, &err), -ECONNREFUSED);
        assert_null(v);
        assert_int_equal(err.error, ECONNREFUSED);
        assert_string_equal(err.step, "virConnectOpen");
        assert_non_null(strstr(gv_error_message(&err), "test:///nonexistent/node.xml"));
        gv_error_done(&err);
}

static const char *drv(TestHost *t, const char *bdf) {
        static char buf[64];
        char *l = strdup_printf("%s/sys/bus/pci/devices/%s/driver", t->dir, bdf);
        ssize_t n = l ? readlink(l, buf, sizeof buf - 1) : -1;
        free(l);
        if (n < 0)
                return "none";
        buf[n] = 0;
        char *b = strrchr(buf, '/');
        return b ? b + 1 : buf;
}

/* The attach/detach transaction through core's API (core/vm/attach.c), as a daemon would call it, on the
 * test driver: a config attach prepares the card and adds both functions; a live attach fails at hot-plug
 * (the test driver has none) and gives the card back; detach releases it. Failures come back in the
 * GvError with a hint, never with CLI option text. */
static void test_attach_transaction(void **state) {
        TestHost t;
        test_host_open(&t, "qemu-q35");
        Virt *v = NULL;
        GvError err = {};
        assert_int_equal(virt_open("test:///default", &v, &err), 0);
        assert_int_equal(virt_define(v, "<domain type='test'><name>off</name><memory>1048576</memory>"
                                        "<os><type>hvm</type></os></domain>"), 0);
        const char *before = drv(&t, "0000:04:00.0");
        assert_string_not_equal(before, "vfio-pci");
        char *orig = strdup(before);

        /* a stopped domain: the running definition cannot change; the hint says which can */
        bool live = true, config = false;
        assert_int_equal(vm_pick_targets(v, "off", &live, &config, &err), -EBUSY);
        assert_int_equal(err.hint, GV_HINT_VM_CONFIG);
        assert_string_equal(err.message, "Domain 'off' is not running");
        live = config = false;
        assert_int_equal(vm_pick_targets(v, "off", &live, &config, &err), 0);
        assert_true(config && !live);
        assert_int_equal(vm_pick_targets(v, "nosuch", &live, &config, &err), -ENOENT);
        gv_error_done(&err);

        /* bad requests are -EINVAL (exit 2), the device that is missing -ENODEV */
        Unit u;
        assert_int_equal(vm_resolve_unit(t.root, t.host, "nonsense", &u, &err), -EINVAL);
        assert_int_equal(vm_resolve_unit(t.root, t.host, "0000:09:00.0", &u, &err), -ENODEV);
        gv_error_done(&err);

        /* live: hot-plug is refused after the preparation, which is undone */
        VmRequest req = {.domain = "test", .device = "04:00.0", .live = true, .timeout_s = 1};
        VmResult res = {};
        char **undo = NULL;
        assert_int_equal(vm_attach(t.root, t.host, v, &req, &res, &undo, &err), -EOPNOTSUPP);
        assert_true(startswith(err.message, "Cannot hot-plug 0000:04:00.0 into 'test': "));
        assert_null(undo);
        assert_string_equal(drv(&t, "0000:04:00.0"), orig);
        gv_error_done(&err);

        /* config: prepared, both functions in the definition */
        req = (VmRequest){.domain = "test", .device = "04:00.1", .config = true, .timeout_s = 1};
        assert_int_equal(vm_attach(t.root, t.host, v, &req, &res, &undo, &err), 0);
        assert_string_equal(res.unit.id, "0000:04:00.0");
        assert_true(res.config && !res.live && !res.dry_run);
        assert_int_equal(res.n_hostdevs, 2);
        assert_int_equal(vm_unit_count(v, "test", true, &res.unit), 2);
        assert_string_equal(drv(&t, "0000:04:00.0"), "vfio-pci");
        assert_string_equal(drv(&t, "0000:04:00.1"), "vfio-pci");
        vm_result_done(&res);

        /* again: refused, and the card stays as it is */
        assert_int_equal(vm_attach(t.root, t.host, v, &req, &res, &undo, &err), -EEXIST);
        assert_string_equal(err.message, "0000:04:00.0 is already attached to 'test' (config).");
        assert_string_equal(drv(&t, "0000:04:00.0"), "vfio-pci");
        gv_error_done(&err);

        /* the boot VGA: refused by the preparation, its hint kept under the transaction's words */
        req.device = "01:00.0";
        int r = vm_attach(t.root, t.host, v, &req, &res, &undo, &err);
        assert_true(r < 0 && r != -EINVAL && r != -ERANGE); /* the operation was refused: exit 1, not 2 */
        assert_int_equal(err.error, -r);
        assert_true(startswith(err.message, "Cannot prepare 0000:01:00.0: "));
        assert_int_equal(err.hint, GV_HINT_FORCE);
        assert_null(strstr(err.message, "--"));
        gv_error_done(&err);

        /* detach: out of the definition, given back to the host */
        req = (VmRequest){.domain = "test", .device = "04:00.0", .config = true, .timeout_s = 1};
        assert_int_equal(vm_detach(t.root, t.host, v, &req, &res, &err), 0);
        assert_true(res.released && !res.kept_for && !res.warning);
        assert_int_equal(vm_unit_count(v, "test", true, &res.unit), 0);
        assert_string_equal(drv(&t, "0000:04:00.0"), orig);
        vm_result_done(&res);
        assert_int_equal(vm_detach(t.root, t.host, v, &req, &res, &err), -ENOENT);
        assert_string_equal(err.message, "0000:04:00.0 is not attached to 'test' (config).");
        gv_error_done(&err);

        /* the guest agent's channel goes into the definition with the unit, once, and out with the undo */
        _cleanup_free_ char *x0 = NULL, *x1 = NULL, *x2 = NULL, *path = NULL;
        assert_int_equal(virt_domain_xml(v, "off", true, &x0), 0);
        assert_int_equal(domain_xml_agent_channel(x0, NULL), 0);
        req = (VmRequest){.domain = "off", .device = "04:00.0", .config = true, .agent_channel = true, .timeout_s = 1};
        assert_int_equal(vm_attach(t.root, t.host, v, &req, &res, &undo, &err), 0);
        assert_int_equal(vm_unit_count(v, "off", true, &res.unit), 2);
        assert_int_equal(virt_domain_xml(v, "off", true, &x1), 0);
        assert_int_equal(domain_xml_agent_channel(x1, &path), 1);
        assert_null(path); /* libvirt picks the socket when the domain starts */
        vm_result_done(&res);
        req.device = "02:00.0"; /* a second unit: the channel is there already, not added twice */
        assert_int_equal(vm_attach(t.root, t.host, v, &req, &res, &undo, &err), 0);
        assert_int_equal(virt_domain_xml(v, "off", true, &x2), 0);
        const char *first = strstr(x2, "org.gpuvirt.agent.0");
        assert_non_null(first);
        assert_null(strstr(first + 1, "org.gpuvirt.agent.0"));
        vm_result_done(&res);
        for (const char *d = "04:00.0"; d; d = streq(d, "04:00.0") ? "02:00.0" : NULL) {
                req = (VmRequest){.domain = "off", .device = d, .config = true, .timeout_s = 1};
                assert_int_equal(vm_detach(t.root, t.host, v, &req, &res, &err), 0);
                vm_result_done(&res);
        }

        free(orig);
        virt_close(v);
        test_host_close(&t);
}

/* vm list's data (core/vm/vmlist.c): the host's GPU units and a referenced device this host lacks, their
 * holders, and per domain its units and migration verdict. */
static void test_vm_list(void **state) {
        TestHost t;
        test_host_open(&t, "qemu-q35");
        Virt *v = NULL;
        GvError err = {};
        assert_int_equal(virt_open("test:///default", &v, &err), 0);
        assert_int_equal(virt_define(v, "<domain type='test'><name>cold</name><memory>1048576</memory>"
                                        "<os><type>hvm</type></os><devices><hostdev mode='subsystem' type='pci' "
                                        "managed='no'><source><address domain='0x0000' bus='0x02' slot='0x00' "
                                        "function='0x0'/></source></hostdev><hostdev mode='subsystem' type='pci' "
                                        "managed='no'><source><address domain='0x0000' bus='0x77' slot='0x00' "
                                        "function='0x0'/></source></hostdev></devices></domain>"), 0);
        VmList l = {};
        assert_int_equal(vm_list_gather(t.root, t.host, v, &l, &err), 0);
        assert_null(l.libvirt_error);
        assert_int_equal(l.n_doms, 2);
        /* the three GPU units of the profile, then the absent one */
        assert_int_equal(l.n_units, 4);
        assert_string_equal(l.units[1].unit.id, "0000:02:00.0");
        assert_true(l.units[1].present);
        assert_int_equal(l.units[1].n_holders, 1);
        assert_true(l.units[1].holders[0].config && !l.units[1].holders[0].live);
        assert_null(l.units[1].held_by); /* cold is not running */
        assert_string_equal(l.units[3].unit.id, "0000:77:00.0");
        assert_false(l.units[3].present);
        size_t c = streq(l.doms[0].name, "cold") ? 0 : 1;
        assert_string_equal(l.domains[c].dom->name, "cold");
        assert_int_equal(l.domains[c].n_units, 2);
        assert_false(l.domains[c].migratable);
        assert_int_equal(l.domains[c].n_blockers, 2);
        assert_non_null(strstr(l.domains[c].blockers[0], "cannot be migrated"));
        assert_int_equal(l.domains[1 - c].n_units, 0);
        vm_list_done(&l);

        /* libvirt not consulted: units only */
        assert_int_equal(vm_list_gather(t.root, t.host, NULL, &l, &err), 0);
        assert_int_equal(l.n_doms, 0);
        assert_int_equal(l.n_units, 3);
        vm_list_done(&l);
        virt_close(v);
        test_host_close(&t);
}

/* Holders and migration verdicts (core/vm/holders.c), over hand-made domain lists: a holder is found by any
 * function of the unit, in the live or the persistent definition; the running holder skips stopped domains
 * and the excepted one; each migration blocker is reported, and a migratable vGPU has none. */
static void test_holders_and_migration(void **state) {
        PciAddr gpu = {.bus = 0x3b}, audio = {.bus = 0x3b, .func = 1}, other = {.bus = 0x5e};
        HostdevRef r_audio = {.type = HOSTDEV_TYPE_PCI, .addr = audio}, r_other = {.type = HOSTDEV_TYPE_PCI, .addr = other};
        VirtDomain doms[] = {
                {.name = (char *)"stopped", .persistent = true, .config = {.hostdevs = &r_audio, .n_hostdevs = 1}},
                {.name = (char *)"web", .active = true, .live = {.hostdevs = &r_audio, .n_hostdevs = 1}},
                {.name = (char *)"db", .active = true, .live = {.hostdevs = &r_other, .n_hostdevs = 1}},
        };
        PciAddr funcs[] = {gpu, audio};
        Unit u = {.kind = UNIT_PCI, .id = "0000:3b:00.0", .funcs = funcs, .n_funcs = 2, .iommu_group = -1};
        Holder *hs = NULL;
        size_t nh = 0;
        assert_int_equal(unit_holders(&u, doms, ELEMENTSOF(doms), &hs, &nh), 0);
        assert_int_equal(nh, 2);
        assert_string_equal(hs[0].dom->name, "stopped");
        assert_true(hs[0].config && !hs[0].live);
        assert_string_equal(hs[1].dom->name, "web");
        assert_true(hs[1].live && !hs[1].config);
        free(hs);
        const VirtDomain *run = unit_running_holder(&u, doms, ELEMENTSOF(doms), NULL);
        assert_non_null(run);
        assert_string_equal(run->name, "web");
        assert_null(unit_running_holder(&u, doms, ELEMENTSOF(doms), "web"));

        /* vfio-pci devices never migrate; a vGPU needs each version */
        MigrationHost old = {.libvirt = 8005000, .qemu = 8000000, .is_qemu = true, .kernel = 5015};
        MigrationHost new = {.libvirt = 9000000, .qemu = 8002000, .is_qemu = true, .kernel = 6001};
        char **bl = NULL;
        size_t nb = 0;
        assert_int_equal(unit_migration_blockers(&u, &new, &bl, &nb), 0);
        assert_int_equal(nb, 1);
        assert_string_equal(bl[0], "0000:3b:00.0: a passed-through device on vfio-pci cannot be migrated");
        strv_free(bl), bl = NULL, nb = 0;
        Unit v = {.kind = UNIT_MDEV, .id = "7d6f0b2e-51a4-4c2b-9d3e-0a1b2c3d4e5f", .driver = (char *)"nvidia"};
        assert_int_equal(unit_migration_blockers(&v, &new, &bl, &nb), 0);
        assert_int_equal(nb, 0);
        assert_int_equal(unit_migration_blockers(&v, &old, &bl, &nb), 0);
        assert_int_equal(nb, 3);
        assert_non_null(strstr(bl[0], "libvirt >= 8.6"));
        assert_non_null(strstr(bl[1], "QEMU >= 8.1"));
        assert_non_null(strstr(bl[2], "kernel >= 5.18"));
        strv_free(bl), bl = NULL, nb = 0;
        MigrationHost xen = new;
        xen.is_qemu = false, xen.qemu = 0;
        assert_int_equal(unit_migration_blockers(&v, &xen, &bl, &nb), 0);
        assert_int_equal(nb, 1);
        assert_non_null(strstr(bl[0], "(not a QEMU domain)"));
        strv_free(bl), bl = NULL, nb = 0;
        v.driver = (char *)"i915";
        assert_int_equal(unit_migration_blockers(&v, &new, &bl, &nb), 0);
        assert_int_equal(nb, 1);
        assert_non_null(strstr(bl[0], "vGPU driver i915 has no VFIO migration support"));
        strv_free(bl);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_domain_xml),
                cmocka_unit_test(test_holders_and_migration),
                cmocka_unit_test(test_units),
                cmocka_unit_test(test_libvirt_roundtrip),
                cmocka_unit_test(test_connect),
                cmocka_unit_test(test_attach_transaction),
                cmocka_unit_test(test_vm_list),
                cmocka_unit_test(test_release_driverless_vf),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/dlsym-table.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "core/vm/agentchan.h"
#include "core/vm/libvirt.h"

struct Virt {
        virConnectPtr conn;
        char *uri;
        char *error;
};

/*
 * libvirt is loaded with dlopen when a command needs it, through one typed symbol table (the
 * declarations come from libvirt-dev's headers): linking it would load its ~50 shared libraries into
 * every gpuvirt process (about 8 ms of start-up here), whether or not it talks to libvirt.
 */
#define VIRT_SYMBOLS(X) \
        X(virConnSetErrorFunc) \
        X(virConnectClose) \
        X(virConnectGetLibVersion) \
        X(virConnectGetVersion) \
        X(virConnectListAllDomains) \
        X(virConnectOpen) \
        X(virDomainAttachDeviceFlags) \
        X(virDomainDefineXML) \
        X(virDomainDetachDeviceFlags) \
        X(virDomainFree) \
        X(virDomainGetName) \
        X(virDomainGetXMLDesc) \
        X(virDomainIsActive) \
        X(virDomainIsPersistent) \
        X(virDomainLookupByName) \
        X(virDomainMigrateToURI3) \
        X(virConnectListAllNodeDevices) \
        X(virNodeDeviceGetName) \
        X(virNodeDeviceGetXMLDesc) \
        X(virNodeDeviceCreateXML) \
        X(virNodeDeviceLookupByName) \
        X(virNodeDeviceDestroy) \
        X(virNodeDeviceDetachFlags) \
        X(virNodeDeviceFree) \
        X(virGetLastError) \
        X(virInitialize) \
        X(virResetLastError) \
        X(virSetErrorFunc)

static struct {
        void *dl;
#define VIRT_SYM_FIELD(name) __typeof__(&name) name;
        VIRT_SYMBOLS(VIRT_SYM_FIELD)
#undef VIRT_SYM_FIELD
} sym;

/* 0, or -ENOPKG when libvirt (libvirt0) is not installed or lacks a symbol. */
static int virt_dlopen(GvError *err) {
        if (sym.dl)
                return 0;
        void *dl = dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return gv_error_set(err, -ENOPKG, NULL, "dlopen", "libvirt is not available: %s", dlerror());
        const DlsymEntry table[] = {
#define VIRT_SYM_ENTRY(name) {#name, (void **)&sym.name, true},
                VIRT_SYMBOLS(VIRT_SYM_ENTRY)
#undef VIRT_SYM_ENTRY
        };
        const char *missing = NULL;
        if (dlsym_table(dl, table, ELEMENTSOF(table), &missing) < 0) {
                dlclose(dl);
                return gv_error_set(err, -ENOPKG, NULL, "dlsym", "libvirt is not available: libvirt.so.0 lacks %s", missing);
        }
        sym.dl = dl;
        return 0;
}

/*
 * libxml2 too is loaded with dlopen, on the first domain or node device XML to read: linked, it would pull
 * ICU, liblzma and libstdc++ into every gpuvirt process (two thirds of the start-up of `gpuvirt --version`),
 * though only this file uses it. The same typed table as libvirt's; xmlFree is a variable of libxml2 (a
 * function pointer), so its entry holds the variable's address.
 */
#define XML_SYMBOLS(X) \
        X(xmlAddChild) \
        X(xmlBufferContent) \
        X(xmlBufferCreate) \
        X(xmlBufferFree) \
        X(xmlDocCopyNode) \
        X(xmlDocDumpMemory) \
        X(xmlDocGetRootElement) \
        X(xmlFree) \
        X(xmlFreeDoc) \
        X(xmlFreeNode) \
        X(xmlGetProp) \
        X(xmlNodeDump) \
        X(xmlNodeGetContent) \
        X(xmlReadMemory) \
        X(xmlSetGenericErrorFunc) \
        X(xmlStrEqual) \
        X(xmlUnlinkNode)

static struct {
        void *dl;
#define XML_SYM_FIELD(name) __typeof__(&name) name;
        XML_SYMBOLS(XML_SYM_FIELD)
#undef XML_SYM_FIELD
} xmlsym;

/* 0, or -ENOPKG when libxml2 (libxml2, which libvirt0 depends on) is not installed or lacks a symbol. */
static int xml_dlopen(void) {
        if (xmlsym.dl)
                return 0;
        void *dl = dlopen("libxml2.so.2", RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return log_debug_errno(-ENOPKG, "libxml2 is not available: %s", dlerror());
        const DlsymEntry table[] = {
#define XML_SYM_ENTRY(name) {#name, (void **)&xmlsym.name, true},
                XML_SYMBOLS(XML_SYM_ENTRY)
#undef XML_SYM_ENTRY
        };
        const char *missing = NULL;
        if (dlsym_table(dl, table, ELEMENTSOF(table), &missing) < 0) {
                dlclose(dl);
                return log_debug_errno(-ENOPKG, "libxml2.so.2 lacks %s", missing);
        }
        xmlsym.dl = dl;
        return 0;
}

/* Cleanup helpers for libvirt's handles (through the loaded table) and libxml2's objects. */
static void virt_domain_freep(virDomainPtr *d) {
        if (*d)
                sym.virDomainFree(*d);
}
#define _cleanup_virt_domain_ _cleanup_(virt_domain_freep)

static void xml_doc_freep(xmlDocPtr *d) {
        if (*d)
                xmlsym.xmlFreeDoc(*d);
}
#define _cleanup_xml_doc_ _cleanup_(xml_doc_freep)

static void xml_char_freep(xmlChar **s) {
        if (*s)
                (*xmlsym.xmlFree)(*s);
}
#define _cleanup_xml_char_ _cleanup_(xml_char_freep)

static void xml_buffer_freep(xmlBufferPtr *b) {
        if (*b)
                xmlsym.xmlBufferFree(*b);
}
#define _cleanup_xml_buffer_ _cleanup_(xml_buffer_freep)

/* ---- errors: the one place libvirt's errors become -errno ---- */

static void quiet_handler(void *userdata, virErrorPtr e) {
        /* libvirt prints every error to stderr by default; we report once, at the call site. */
        (void)userdata;
        (void)e;
}

/* Convert libvirt's last error (thread-local) into -errno; its message replaces *msg. */
static int convert_error(const char *what, char **msg) {
        virErrorPtr e = sym.virGetLastError();
        int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
        int r;
        switch (code) {
        case VIR_ERR_NO_DOMAIN:
        case VIR_ERR_NO_NODE_DEVICE:
                r = -ENOENT;
                break;
        case VIR_ERR_NO_SUPPORT:
        case VIR_ERR_OPERATION_UNSUPPORTED:
        case VIR_ERR_ARGUMENT_UNSUPPORTED:
                r = -EOPNOTSUPP;
                break;
        case VIR_ERR_OPERATION_INVALID: /* e.g. the domain is not running */
                r = -EBUSY;
                break;
        case VIR_ERR_XML_ERROR:
        case VIR_ERR_XML_DETAIL:
        case VIR_ERR_INVALID_ARG:
        case VIR_ERR_CONFIG_UNSUPPORTED:
                r = -EINVAL;
                break;
        case VIR_ERR_AUTH_FAILED:
        case VIR_ERR_AUTH_CANCELLED:
        case VIR_ERR_AUTH_UNAVAILABLE:
        case VIR_ERR_ACCESS_DENIED:
                r = -EACCES;
                break;
        case VIR_ERR_NO_CONNECT:
        case VIR_ERR_RPC:
                r = -ECONNREFUSED;
                break;
        case VIR_ERR_OPERATION_TIMEOUT:
        case VIR_ERR_AGENT_UNRESPONSIVE:
                r = -ETIMEDOUT;
                break;
        case VIR_ERR_NO_MEMORY:
                r = -ENOMEM;
                break;
        case VIR_ERR_OPERATION_FAILED:
        case VIR_ERR_INTERNAL_ERROR:
        default:
                r = -EIO;
        }
        char *m = strdup_printf("%s: %s", what, e && e->message ? e->message : "unknown libvirt error");
        log_debug("libvirt: %s (code %d)", m ?: what, code);
        if (msg) {
                free(*msg);
                *msg = m;
        } else
                free(m);
        sym.virResetLastError();
        return r;
}

static int virt_error(Virt *v, const char *what) {
        return convert_error(what, &v->error);
}

static void xml_quiet(void *ctx, const char *msg, ...) {
        (void)ctx;
        (void)msg;
}

static void virt_global_init(void) {
        static bool done = false;
        if (done)
                return;
        sym.virSetErrorFunc(NULL, quiet_handler);
        /* libxml2 (also inside libvirt, e.g. the test driver reading its node file) prints on stderr */
        if (xml_dlopen() >= 0)
                xmlsym.xmlSetGenericErrorFunc(NULL, xml_quiet);
        (void)sym.virInitialize();
        done = true;
}

const char *virt_resolve_uri(const char *connect) {
        if (!isempty(connect))
                return connect;
        const char *e = getenv("LIBVIRT_DEFAULT_URI");
        return !isempty(e) ? e : VIRT_DEFAULT_URI;
}

int virt_open(const char *uri, Virt **ret, GvError *err) {
        int k = virt_dlopen(err);
        if (k < 0)
                return k;
        virt_global_init();
        _cleanup_virt_close_ Virt *v = calloc(1, sizeof *v);
        if (!v)
                return -ENOMEM;
        v->uri = strdup(uri);
        if (!v->uri)
                return -ENOMEM;
        v->conn = sym.virConnectOpen(uri);
        if (!v->conn) {
                char *msg = NULL;
                int r = convert_error(uri, &msg);
                /* whatever the code: the caller cannot talk to libvirt */
                return gv_error_take(err, r == -EACCES ? r : -ECONNREFUSED, NULL, "virConnectOpen", GV_HINT_NONE, msg);
        }
        sym.virConnSetErrorFunc(v->conn, NULL, quiet_handler);
        *ret = TAKE_PTR(v);
        return 0;
}

Virt *virt_close(Virt *v) {
        if (!v)
                return NULL;
        if (v->conn)
                sym.virConnectClose(v->conn);
        free(v->uri);
        free(v->error);
        free(v);
        return NULL;
}

const char *virt_uri(const Virt *v) {
        return v->uri;
}

int virt_error_take(Virt *v, GvError *err, int r, const char *device, const char *fmt, ...) {
        char *head = NULL, *msg = NULL;
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(&head, fmt, ap) < 0)
                        head = NULL;
                va_end(ap);
        }
        if (!fmt || head)
                msg = strdup_printf("%s%s", head ?: "", v->error ?: "");
        free(head);
        return gv_error_take(err, r, device, NULL, GV_HINT_NONE, msg);
}

unsigned long virt_lib_version(Virt *v) {
        unsigned long ver = 0;
        if (sym.virConnectGetLibVersion(v->conn, &ver) < 0) {
                (void)virt_error(v, "virConnectGetLibVersion");
                return 0;
        }
        return ver;
}

unsigned long virt_hv_version(Virt *v) {
        unsigned long ver = 0;
        if (sym.virConnectGetVersion(v->conn, &ver) < 0) {
                (void)virt_error(v, "virConnectGetVersion");
                return 0;
        }
        return ver;
}

/* ---- domain XML (libxml2) ---- */

bool hostdev_ref_equal(const HostdevRef *a, const HostdevRef *b) {
        if (a->type != b->type)
                return false;
        if (a->type == HOSTDEV_TYPE_MDEV)
                return strcasecmp(a->uuid, b->uuid) == 0;
        return a->addr.domain == b->addr.domain && a->addr.bus == b->addr.bus && a->addr.slot == b->addr.slot &&
               a->addr.func == b->addr.func;
}

void domain_xml_info_done(DomainXmlInfo *i) {
        free(i->hostdevs);
        *i = (DomainXmlInfo){};
}

static xmlDocPtr xml_read(const char *xml) {
        /* without libxml2 (no libvirt either: libvirt0 depends on it) no XML reads, as malformed XML does not */
        if (!xml || xml_dlopen() < 0)
                return NULL;
        /* NOERROR/NOWARNING: libxml2 would otherwise print parse errors on stderr. */
        return xmlsym.xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                             XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool is_elem(xmlNodePtr n, const char *name) {
        return n && n->type == XML_ELEMENT_NODE && xmlsym.xmlStrEqual(n->name, (const xmlChar *)name);
}

static xmlNodePtr child(xmlNodePtr n, const char *name) {
        for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
                if (is_elem(c, name))
                        return c;
        return NULL;
}

/* An attribute as a new string (NULL when absent). */
static char *attr(xmlNodePtr n, const char *name) {
        _cleanup_xml_char_ xmlChar *v = xmlsym.xmlGetProp(n, (const xmlChar *)name);
        return v ? strdup((const char *)v) : NULL;
}

/* libvirt accepts decimal and 0x-prefixed hex in addresses. */
static int attr_uint(xmlNodePtr n, const char *name, unsigned max, unsigned *ret) {
        _cleanup_free_ char *s = attr(n, name);
        if (!s)
                return -ENOENT;
        uint32_t v;
        int r = parse_u32(s, 0, &v);
        if (r < 0 || v > max)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static bool attr_is(xmlNodePtr n, const char *name, const char *value) {
        _cleanup_free_ char *s = attr(n, name);
        return s && streq(s, value);
}

static int pci_from_address(xmlNodePtr a, PciAddr *ret) {
        unsigned dom = 0, bus, slot, fn;
        int r = attr_uint(a, "domain", 0xffff, &dom);
        if (r < 0 && r != -ENOENT)
                return r;
        if (attr_uint(a, "bus", 0xff, &bus) < 0 || attr_uint(a, "slot", 0x1f, &slot) < 0 ||
            attr_uint(a, "function", 7, &fn) < 0)
                return -EBADMSG;
        *ret = (PciAddr){.domain = (uint16_t)dom, .bus = (uint8_t)bus, .slot = (uint8_t)slot, .func = (uint8_t)fn};
        return 0;
}

/* The host side of a <hostdev mode='subsystem'> of type pci or mdev. -ENOENT for other hostdevs. */
static int hostdev_from_node(xmlNodePtr h, HostdevRef *ret) {
        if (!attr_is(h, "mode", "subsystem"))
                return -ENOENT;
        xmlNodePtr a = child(child(h, "source"), "address");
        if (!a)
                return -ENOENT;
        if (attr_is(h, "type", "pci")) {
                HostdevRef r = {.type = HOSTDEV_TYPE_PCI};
                if (pci_from_address(a, &r.addr) < 0)
                        return -EBADMSG;
                *ret = r;
                return 0;
        }
        if (attr_is(h, "type", "mdev")) {
                _cleanup_free_ char *u = attr(a, "uuid");
                if (!u || strlen(u) != 36)
                        return -EBADMSG;
                HostdevRef r = {.type = HOSTDEV_TYPE_MDEV};
                for (size_t i = 0; i < 36; i++)
                        r.uuid[i] = (char)tolower((unsigned char)u[i]);
                *ret = r;
                return 0;
        }
        return -ENOENT;
}

static xmlNodePtr devices_of(xmlDocPtr doc) {
        xmlNodePtr root = xmlsym.xmlDocGetRootElement(doc);
        return is_elem(root, "domain") ? child(root, "devices") : NULL;
}

int domain_xml_parse(const char *xml, DomainXmlInfo *ret) {
        _cleanup_xml_doc_ xmlDocPtr doc = xml_read(xml);
        if (!doc || !is_elem(xmlsym.xmlDocGetRootElement(doc), "domain"))
                return -EBADMSG;
        DomainXmlInfo info = {};
        xmlNodePtr hidden = child(child(child(xmlsym.xmlDocGetRootElement(doc), "features"), "kvm"), "hidden");
        info.kvm_hidden = hidden && attr_is(hidden, "state", "on");
        xmlNodePtr devs = devices_of(doc);
        for (xmlNodePtr c = devs ? devs->children : NULL; c; c = c->next) {
                HostdevRef ref;
                if (!is_elem(c, "hostdev") || hostdev_from_node(c, &ref) < 0)
                        continue; /* other hostdev kinds (usb, scsi) and malformed ones are not ours */
                HostdevRef *n = realloc(info.hostdevs, (info.n_hostdevs + 1) * sizeof *n);
                if (!n) {
                        domain_xml_info_done(&info);
                        return -ENOMEM;
                }
                info.hostdevs = n;
                info.hostdevs[info.n_hostdevs++] = ref;
        }
        *ret = info;
        return 0;
}

static int doc_dump(xmlDocPtr doc, char **ret) {
        _cleanup_xml_char_ xmlChar *buf = NULL;
        int len = 0;
        xmlsym.xmlDocDumpMemory(doc, &buf, &len);
        if (!buf)
                return -ENOMEM;
        char *s = strndup((const char *)buf, (size_t)len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int domain_xml_add_hostdevs(const char *xml, const char *hostdevs, char **ret) {
        _cleanup_free_ char *wrapped = strdup_printf("<hostdevs>%s</hostdevs>", hostdevs);
        if (!wrapped)
                return -ENOMEM;
        _cleanup_xml_doc_ xmlDocPtr doc = xml_read(xml), add = xml_read(wrapped);
        int r = -EBADMSG;
        xmlNodePtr devs = doc ? devices_of(doc) : NULL;
        if (devs && add) {
                r = 0;
                for (xmlNodePtr c = xmlsym.xmlDocGetRootElement(add)->children; c && r >= 0; c = c->next) {
                        if (c->type != XML_ELEMENT_NODE)
                                continue;
                        xmlNodePtr copy = xmlsym.xmlDocCopyNode(c, doc, 1);
                        if (!copy || !xmlsym.xmlAddChild(devs, copy))
                                r = -ENOMEM;
                }
                if (r >= 0)
                        r = doc_dump(doc, ret);
        }
        return r;
}

int domain_xml_remove_hostdevs(const char *xml, const HostdevRef *refs, size_t n_refs, char **ret,
                               size_t *ret_removed) {
        _cleanup_xml_doc_ xmlDocPtr doc = xml_read(xml);
        xmlNodePtr devs = doc ? devices_of(doc) : NULL;
        if (!devs)
                return -EBADMSG;
        size_t removed = 0;
        for (xmlNodePtr c = devs->children, next; c; c = next) {
                next = c->next;
                HostdevRef ref;
                if (!is_elem(c, "hostdev") || hostdev_from_node(c, &ref) < 0)
                        continue;
                for (size_t i = 0; i < n_refs; i++)
                        if (hostdev_ref_equal(&ref, &refs[i])) {
                                xmlsym.xmlUnlinkNode(c);
                                xmlsym.xmlFreeNode(c);
                                removed++;
                                break;
                        }
        }
        int r = doc_dump(doc, ret);
        if (r >= 0)
                *ret_removed = removed;
        return r;
}

static void mark_slots(xmlNodePtr n, bool used[32]) {
        for (xmlNodePtr c = n->children; c; c = c->next) {
                if (c->type != XML_ELEMENT_NODE)
                        continue;
                /* guest addresses: <address type='pci'> not inside a hostdev's <source> */
                if (is_elem(c, "address") && !is_elem(n, "source") && attr_is(c, "type", "pci")) {
                        unsigned bus = 0, slot;
                        (void)attr_uint(c, "bus", 0xff, &bus);
                        if (bus == 0 && attr_uint(c, "slot", 0x1f, &slot) >= 0)
                                used[slot] = true;
                }
                mark_slots(c, used);
        }
}

int domain_xml_agent_channel(const char *xml, char **ret_path) {
        _cleanup_xml_doc_ xmlDocPtr doc = xml_read(xml);
        if (!doc || !is_elem(xmlsym.xmlDocGetRootElement(doc), "domain"))
                return -EBADMSG;
        xmlNodePtr devs = devices_of(doc); /* none: no channel */
        for (xmlNodePtr c = devs ? devs->children : NULL; c; c = c->next) {
                xmlNodePtr target = child(c, "target");
                if (!is_elem(c, "channel") || !attr_is(c, "type", "unix") || !attr_is(target, "name", AGENT_CHANNEL_NAME))
                        continue;
                xmlNodePtr source = child(c, "source");
                char *path = source ? attr(source, "path") : NULL;
                if (ret_path)
                        *ret_path = path;
                else
                        free(path);
                return 1;
        }
        return 0;
}

int domain_xml_free_slot(const char *xml, int *ret_slot) {
        _cleanup_xml_doc_ xmlDocPtr doc = xml_read(xml);
        xmlNodePtr devs = doc ? devices_of(doc) : NULL;
        if (!devs)
                return -EBADMSG;
        bool used[32] = {[0] = true}; /* slot 0: the host bridge */
        mark_slots(devs, used);
        for (int s = 0x10; s < 0x20; s++)
                if (!used[s])
                        return *ret_slot = s, 0;
        for (int s = 0x01; s < 0x10; s++)
                if (!used[s])
                        return *ret_slot = s, 0;
        return -ENOSPC;
}

int domain_xml_hostdev_element(const char *xml, const HostdevRef *want, char **ret) {
        _cleanup_xml_doc_ xmlDocPtr doc = xml_read(xml);
        xmlNodePtr devs = doc ? devices_of(doc) : NULL;
        if (!devs)
                return -EBADMSG;
        for (xmlNodePtr c = devs->children; c; c = c->next) {
                HostdevRef ref;
                if (!is_elem(c, "hostdev") || hostdev_from_node(c, &ref) < 0 || !hostdev_ref_equal(&ref, want))
                        continue;
                _cleanup_xml_buffer_ xmlBufferPtr b = xmlsym.xmlBufferCreate();
                if (!b || xmlsym.xmlNodeDump(b, doc, c, 0, 0) < 0)
                        return -ENOMEM;
                char *el = strdup((const char *)xmlsym.xmlBufferContent(b));
                if (!el)
                        return -ENOMEM;
                *ret = el;
                return 0;
        }
        return -ENOENT;
}

/* ---- domains ---- */

void virt_domains_free(VirtDomain *d, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(d[i].name);
                domain_xml_info_done(&d[i].live);
                domain_xml_info_done(&d[i].config);
        }
        free(d);
}

static int dom_xml(Virt *v, virDomainPtr dom, bool inactive, char **ret) {
        char *x = sym.virDomainGetXMLDesc(dom, inactive ? VIR_DOMAIN_XML_INACTIVE : 0);
        if (!x)
                return virt_error(v, "virDomainGetXMLDesc");
        *ret = x;
        return 0;
}

static int cmp_domain(const void *a, const void *b) {
        return strcmp(((const VirtDomain *)a)->name, ((const VirtDomain *)b)->name);
}

/* virConnectListAllDomains()'s array: each handle, then the array. */
typedef struct DomainHandles {
        virDomainPtr *d;
        int n;
} DomainHandles;

static void domain_handles_done(DomainHandles *h) {
        for (int i = 0; h->d && i < h->n; i++)
                sym.virDomainFree(h->d[i]);
        free(h->d);
}

int virt_list_domains(Virt *v, VirtDomain **ret, size_t *ret_n) {
        _cleanup_(domain_handles_done) DomainHandles hd = {};
        hd.n = sym.virConnectListAllDomains(v->conn, &hd.d, 0);
        if (hd.n < 0)
                return virt_error(v, "virConnectListAllDomains");
        virDomainPtr *doms = hd.d;
        int n = hd.n;
        VirtDomain *out = calloc((size_t)n ?: 1, sizeof *out);
        int r = out ? 0 : -ENOMEM;
        for (int i = 0; i < n && r >= 0; i++) {
                VirtDomain *d = &out[i];
                const char *name = sym.virDomainGetName(doms[i]);
                d->name = strdup(name ?: "?");
                if (!d->name) {
                        r = -ENOMEM;
                        break;
                }
                int a = sym.virDomainIsActive(doms[i]), p = sym.virDomainIsPersistent(doms[i]);
                if (a < 0 || p < 0) {
                        r = virt_error(v, "virDomainIsActive");
                        break;
                }
                d->active = a, d->persistent = p;
                for (int k = 0; k < 2 && r >= 0; k++) {
                        bool inactive = k == 1;
                        if (inactive ? !d->persistent : !d->active)
                                continue;
                        _cleanup_free_ char *x = NULL;
                        r = dom_xml(v, doms[i], inactive, &x);
                        if (r >= 0)
                                r = domain_xml_parse(x, inactive ? &d->config : &d->live);
                }
        }
        if (r < 0) {
                virt_domains_free(out, out ? (size_t)n : 0);
                return r;
        }
        /* libvirt lists from a hash table: sort for stable output */
        if (n > 1)
                qsort(out, (size_t)n, sizeof *out, cmp_domain);
        *ret = out;
        *ret_n = (size_t)n;
        return 0;
}

static int lookup(Virt *v, const char *name, virDomainPtr *ret) {
        virDomainPtr d = sym.virDomainLookupByName(v->conn, name);
        if (!d)
                return virt_error(v, name);
        *ret = d;
        return 0;
}

int virt_domain_state(Virt *v, const char *name, bool *ret_active, bool *ret_persistent) {
        _cleanup_virt_domain_ virDomainPtr d = NULL;
        int r = lookup(v, name, &d);
        if (r < 0)
                return r;
        int a = sym.virDomainIsActive(d), p = sym.virDomainIsPersistent(d);
        if (a < 0 || p < 0)
                return virt_error(v, name);
        *ret_active = a, *ret_persistent = p;
        return 0;
}

int virt_domain_xml(Virt *v, const char *name, bool inactive, char **ret) {
        _cleanup_virt_domain_ virDomainPtr d = NULL;
        int r = lookup(v, name, &d);
        if (r < 0)
                return r;
        char *x = NULL;
        r = dom_xml(v, d, inactive, &x);
        if (r < 0)
                return r;
        /* libvirt's strings come from its allocator, which is malloc: the caller frees with free() */
        *ret = x;
        return 0;
}

int virt_define(Virt *v, const char *xml) {
        _cleanup_virt_domain_ virDomainPtr d = sym.virDomainDefineXML(v->conn, xml);
        if (!d)
                return virt_error(v, "virDomainDefineXML");
        return 0;
}

static int attach_detach(Virt *v, const char *name, const char *device_xml, bool attach) {
        _cleanup_virt_domain_ virDomainPtr d = NULL;
        int r = lookup(v, name, &d);
        if (r < 0)
                return r;
        int k = attach ? sym.virDomainAttachDeviceFlags(d, device_xml, VIR_DOMAIN_AFFECT_LIVE)
                       : sym.virDomainDetachDeviceFlags(d, device_xml, VIR_DOMAIN_AFFECT_LIVE);
        if (k < 0)
                return virt_error(v, attach ? "virDomainAttachDeviceFlags" : "virDomainDetachDeviceFlags");
        return 0;
}

int virt_attach_live(Virt *v, const char *name, const char *device_xml) {
        return attach_detach(v, name, device_xml, true);
}

int virt_detach_live(Virt *v, const char *name, const char *device_xml) {
        return attach_detach(v, name, device_xml, false);
}

/* ---- migration: node devices of the destination, the migration call ---- */

/* The free instances of mdev type `type` a node device's XML offers (<capability type='mdev_types'>), -1 when
 * it has none of that type. */
static int nodedev_free_instances(const char *xml, const char *type) {
        xmlDocPtr doc = xml_read(xml);
        xmlNodePtr root = doc ? xmlsym.xmlDocGetRootElement(doc) : NULL;
        int found = -1;
        for (xmlNodePtr cap = root ? root->children : NULL; cap && found < 0; cap = cap->next) {
                if (!is_elem(cap, "capability") || !attr_is(cap, "type", "pci"))
                        continue;
                for (xmlNodePtr mt = cap->children; mt && found < 0; mt = mt->next) {
                        if (!is_elem(mt, "capability") || !attr_is(mt, "type", "mdev_types"))
                                continue;
                        for (xmlNodePtr t = mt->children; t && found < 0; t = t->next) {
                                if (!is_elem(t, "type") || !attr_is(t, "id", type))
                                        continue;
                                xmlNodePtr ai = child(t, "availableInstances");
                                xmlChar *v = ai ? xmlsym.xmlNodeGetContent(ai) : NULL;
                                uint32_t n = 0;
                                found = v && parse_u32((const char *)v, 10, &n) >= 0 ? (int)n : 0;
                                (*xmlsym.xmlFree)(v);
                        }
                }
        }
        if (doc)
                xmlsym.xmlFreeDoc(doc);
        return found;
}

int virt_mdev_parent_with(Virt *v, const char *type, char **ret) {
        virNodeDevicePtr *devs = NULL;
        int n = sym.virConnectListAllNodeDevices(v->conn, &devs, 0);
        if (n < 0)
                return virt_error(v, "virConnectListAllNodeDevices");
        char *best = NULL;
        for (int i = 0; i < n; i++) {
                char *xml = best ? NULL : sym.virNodeDeviceGetXMLDesc(devs[i], 0);
                if (xml && nodedev_free_instances(xml, type) > 0)
                        best = strdup(sym.virNodeDeviceGetName(devs[i]) ?: "");
                free(xml);
                sym.virNodeDeviceFree(devs[i]);
        }
        free(devs);
        if (!best)
                return -ENOENT;
        *ret = best;
        return 0;
}

int virt_mdev_create(Virt *v, const char *parent, const char *type, const char *uuid, char **ret_name) {
        _cleanup_free_ char *xml = strdup_printf("<device><parent>%s</parent><capability type='mdev'><type id='%s'/>"
                                                 "<uuid>%s</uuid></capability></device>",
                                                 parent, type, uuid);
        if (!xml)
                return -ENOMEM;
        virNodeDevicePtr d = sym.virNodeDeviceCreateXML(v->conn, xml, 0);
        if (!d)
                return virt_error(v, "virNodeDeviceCreateXML");
        char *name = strdup(sym.virNodeDeviceGetName(d) ?: "");
        sym.virNodeDeviceFree(d);
        if (!name)
                return -ENOMEM;
        *ret_name = name;
        return 0;
}

int virt_nodedev_destroy(Virt *v, const char *name) {
        virNodeDevicePtr d = sym.virNodeDeviceLookupByName(v->conn, name);
        if (!d)
                return virt_error(v, "virNodeDeviceLookupByName");
        int r = sym.virNodeDeviceDestroy(d) < 0 ? virt_error(v, "virNodeDeviceDestroy") : 0;
        sym.virNodeDeviceFree(d);
        return r;
}

int virt_migrate(Virt *v, const char *name, const char *dest_uri) {
        virDomainPtr d = NULL;
        int r = lookup(v, name, &d);
        if (r < 0)
                return r;
        /* peer to peer: the source libvirtd talks to the destination's; the domain stays defined there */
        if (sym.virDomainMigrateToURI3(d, dest_uri, NULL, 0,
                                       VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST) < 0)
                r = virt_error(v, "virDomainMigrateToURI3");
        sym.virDomainFree(d);
        return r;
}

/* ---- detach-reattach: the destination's PCI node devices ---- */

void virt_pci_nodedevs_free(VirtPciNodedev *d, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(d[i].name);
        free(d);
}

static int child_uint(xmlNodePtr n, const char *name, unsigned max, unsigned *ret) {
        xmlNodePtr c = child(n, name);
        _cleanup_xml_char_ xmlChar *v = c ? xmlsym.xmlNodeGetContent(c) : NULL;
        uint32_t x;
        if (!v || parse_u32((const char *)v, 0, &x) < 0 || x > max)
                return -EBADMSG;
        *ret = x;
        return 0;
}

/* A node device's <capability type='pci'>: its address, IDs and (a VF) its PF. -ENOENT: not a PCI device. */
static int nodedev_pci_parse(const char *xml, VirtPciNodedev *ret) {
        _cleanup_xml_doc_ xmlDocPtr doc = xml_read(xml);
        xmlNodePtr root = doc ? xmlsym.xmlDocGetRootElement(doc) : NULL;
        for (xmlNodePtr cap = root ? root->children : NULL; cap; cap = cap->next) {
                if (!is_elem(cap, "capability") || !attr_is(cap, "type", "pci"))
                        continue;
                unsigned dom, bus, slot, fn, ven, dev;
                if (child_uint(cap, "domain", 0xffff, &dom) < 0 || child_uint(cap, "bus", 0xff, &bus) < 0 ||
                    child_uint(cap, "slot", 0x1f, &slot) < 0 || child_uint(cap, "function", 7, &fn) < 0 ||
                    attr_uint(child(cap, "vendor"), "id", 0xffff, &ven) < 0 ||
                    attr_uint(child(cap, "product"), "id", 0xffff, &dev) < 0)
                        return -EBADMSG;
                VirtPciNodedev d = {
                        .addr = {.domain = (uint16_t)dom, .bus = (uint8_t)bus, .slot = (uint8_t)slot, .func = (uint8_t)fn},
                        .vendor = (uint16_t)ven,
                        .device = (uint16_t)dev,
                };
                for (xmlNodePtr c = cap->children; c; c = c->next)
                        if (is_elem(c, "capability") && attr_is(c, "type", "phys_function") && child(c, "address"))
                                d.is_vf = pci_from_address(child(c, "address"), &d.pf) >= 0;
                *ret = d;
                return 0;
        }
        return -ENOENT;
}

int virt_list_pci_nodedevs(Virt *v, VirtPciNodedev **ret, size_t *ret_n) {
        virNodeDevicePtr *devs = NULL;
        int n = sym.virConnectListAllNodeDevices(v->conn, &devs, 0);
        if (n < 0)
                return virt_error(v, "virConnectListAllNodeDevices");
        VirtPciNodedev *out = calloc((size_t)n + 1, sizeof *out);
        size_t k = 0;
        int r = out ? 0 : -ENOMEM;
        for (int i = 0; i < n; i++) {
                char *xml = r >= 0 ? sym.virNodeDeviceGetXMLDesc(devs[i], 0) : NULL;
                if (r >= 0 && !xml)
                        r = virt_error(v, "virNodeDeviceGetXMLDesc");
                if (xml && nodedev_pci_parse(xml, &out[k]) >= 0) {
                        out[k].name = strdup(sym.virNodeDeviceGetName(devs[i]) ?: "");
                        if (!out[k++].name)
                                r = -ENOMEM;
                }
                free(xml);
                sym.virNodeDeviceFree(devs[i]);
        }
        free(devs);
        if (r < 0) {
                virt_pci_nodedevs_free(out, out ? k : 0);
                return r;
        }
        *ret = out;
        *ret_n = k;
        return 0;
}

int virt_nodedev_detach(Virt *v, const char *name) {
        virNodeDevicePtr d = sym.virNodeDeviceLookupByName(v->conn, name);
        if (!d)
                return virt_error(v, "virNodeDeviceLookupByName");
        /* libvirt's managed detach: unbinds the host driver and binds vfio-pci on that host */
        int r = sym.virNodeDeviceDetachFlags(d, "vfio", 0) < 0 ? virt_error(v, "virNodeDeviceDetachFlags") : 0;
        sym.virNodeDeviceFree(d);
        return r;
}

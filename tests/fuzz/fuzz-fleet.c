/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fleet's parsers of untrusted input: GPU records and reservation records other hosts wrote to the
 * store, and the lines of a request file (`fleet request -f FILE`). The first byte of the input picks the
 * parser ('0'..'2', modulo), the rest is its text. What is accepted reads back the same after being
 * written out again; what is refused says why. */
#include <string.h>

#include "core/fleet/fleet.h"
#include "core/fleet/store.h"
#include "fuzz.h"

static void gpu_record(const char *text) {
        FleetGpuInfo g = {};
        GvError err = {};
        int r = fleet_gpu_info_parse(text, &g, &err);
        FUZZ_CHECK(r >= 0 || (r == -EBADMSG && err.message && err.error == EBADMSG) || r == -ENOMEM);
        if (r >= 0) {
                FUZZ_CHECK(pci_addr_is_canonical(g.address) || !*g.address);
                json_object *o = fleet_gpu_info_json(&g);
                const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
                FleetGpuInfo g2 = {};
                GvError err2 = {};
                FUZZ_CHECK(fleet_gpu_info_parse(t, &g2, &err2) == 0);
                json_object *o2 = fleet_gpu_info_json(&g2);
                FUZZ_CHECK(streq(t, json_object_to_json_string_ext(o2, JSON_C_TO_STRING_PLAIN)));
                json_object_put(o2);
                json_object_put(o);
                fleet_gpu_info_done(&g2);
                gv_error_done(&err2);
        }
        fleet_gpu_info_done(&g);
        gv_error_done(&err);
}

static void request_equal(const FleetRequest *a, const FleetRequest *b) {
        FUZZ_CHECK(a->kind == b->kind && streq(a->arg, b->arg) && a->min_memory_mb == b->min_memory_mb &&
                   a->vendor == b->vendor && a->device == b->device && a->count == b->count &&
                   a->same_host == b->same_host && a->same_numa == b->same_numa && a->same_nvlink == b->same_nvlink &&
                   a->live_migratable == b->live_migratable && streq(a->group, b->group) && streq(a->owner, b->owner));
}

/* A reservation keeps its request in the store as JSON: it reads back the same. */
static void request_roundtrip(const FleetRequest *q) {
        json_object *o = fleet_request_json(q);
        FleetRequest q2 = {};
        FUZZ_CHECK(fleet_request_from_json(o, &q2) == 0);
        request_equal(q, &q2);
        json_object_put(o);
}

static void request_line(const char *text) {
        FleetRequest q = {};
        GvError err = {};
        int r = fleet_request_parse_line(text, &q, &err);
        FUZZ_CHECK(r >= 0 || (err.message && err.error == -r) || r == -ENOMEM);
        if (r >= 0) {
                request_roundtrip(&q);
        }
        gv_error_done(&err);
}

static void reservation_record(const char *text) {
        GvError err = {};
        json_object *o = store_record_parse("/gpuvirt/res/x", text, &err);
        FUZZ_CHECK(o || (err.message && strstr(err.message, "/gpuvirt/res/x")) || err.error == ENOMEM);
        if (o) {
                FleetRequest q = {};
                if (fleet_request_from_json(json_object_object_get(o, "request"), &q) == 0)
                        request_roundtrip(&q);
                json_object_put(o);
        }
        gv_error_done(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        char *text = fuzz_text(data + 1, size - 1);
        if (!text)
                return 0;
        switch (data[0] % 3) {
        case 0:
                gpu_record(text);
                break;
        case 1:
                request_line(text);
                break;
        case 2:
                reservation_record(text);
                break;
        }
        free(text);
        return 0;
}

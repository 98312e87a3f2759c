/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "basic/fileio.h"
#include "core/state/hoststate.h"
#include "core/state/state-internal.h"
#include "core/store/statefile.h"

typedef struct ResultRecord {
        int64_t time;
        const char *file, *error;
        bool ok;
        unsigned steps;
} ResultRecord;

static const JsonField result_fields[] = {
        {"time", JSON_KIND_INT64, JSON_MANDATORY, offsetof(ResultRecord, time)},
        {"file", JSON_KIND_STRING, JSON_MANDATORY, offsetof(ResultRecord, file), .valid = is_any},
        {"ok", JSON_KIND_BOOL, JSON_MANDATORY, offsetof(ResultRecord, ok)},
        {"steps", JSON_KIND_UINT, JSON_MANDATORY, offsetof(ResultRecord, steps), .max = INT32_MAX},
        {"error", JSON_KIND_STRING, JSON_NULLABLE, offsetof(ResultRecord, error), .valid = is_any},
        {},
};

void host_result_done(HostResult *r) {
        free(r->file);
        free(r->error);
        *r = (HostResult){};
}

int host_result_read(Root *root, HostResult *ret, GvError *err) {
        json_object *o = NULL;
        ResultRecord rec = {};
        int r = state_read_record(root, result_fields, &rec, &o, err, HOST_RESULT_FILE);
        if (r < 0)
                return r;
        HostResult h = {.time = rec.time, .ok = rec.ok, .steps = rec.steps, .file = strdup(rec.file),
                        .error = rec.error ? strdup(rec.error) : NULL};
        json_object_put(o);
        if (!h.file || (rec.error && !h.error)) {
                host_result_done(&h);
                return gv_error_set(err, -ENOMEM, NULL, NULL, NULL);
        }
        *ret = h;
        return 0;
}

int host_result_write(Root *root, const char *file, bool ok, size_t steps, const char *error) {
        json_object *o = json_object_new_object();
        if (!o || json_add(o, "time", json_object_new_int64((int64_t)time(NULL))) < 0 ||
            json_add(o, "file", json_object_new_string(file)) < 0 || json_add(o, "ok", json_object_new_boolean(ok)) < 0 ||
            json_add(o, "steps", json_object_new_int((int)steps)) < 0 ||
            json_add_string(o, "error", error) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        int r = state_write_json(root, o, HOST_RESULT_FILE);
        json_object_put(o);
        return r;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>

#include "k8s/messages.h"

/* m and every message inside it carry no field numbered 0 */
static bool message_valid(const ProtobufCMessage *m) {
        for (unsigned i = 0; i < m->n_unknown_fields; i++)
                if (m->unknown_fields[i].tag == 0)
                        return false;
        const ProtobufCMessageDescriptor *d = m->descriptor;
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                if (f->type != PROTOBUF_C_TYPE_MESSAGE)
                        continue;
                const char *base = (const char *) m + f->offset;
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n = *(const size_t *) ((const char *) m + f->quantifier_offset);
                        ProtobufCMessage *const *l = *(ProtobufCMessage *const *const *) base;
                        for (size_t j = 0; j < n; j++)
                                if (!message_valid(l[j]))
                                        return false;
                } else {
                        const ProtobufCMessage *s = *(const ProtobufCMessage *const *) base;
                        if (s && !message_valid(s))
                                return false;
                }
        }
        return true;
}

static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d, const uint8_t *msg, size_t len) {
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, msg);
        if (m && !message_valid(m)) {
                protobuf_c_message_free_unpacked(m, NULL);
                return NULL;
        }
        return m;
}

V1beta1__AllocateRequest *allocate_request_unpack(const uint8_t *msg, size_t len) {
        return (V1beta1__AllocateRequest *) unpack(&v1beta1__allocate_request__descriptor, msg, len);
}

V1beta1__PreferredAllocationRequest *preferred_request_unpack(const uint8_t *msg, size_t len) {
        return (V1beta1__PreferredAllocationRequest *) unpack(&v1beta1__preferred_allocation_request__descriptor, msg,
                                                              len);
}

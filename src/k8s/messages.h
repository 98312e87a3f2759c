/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The requests kubelet sends, unpacked by protobuf-c and held to the protobuf wire format as kubelet's Go
 * runtime writes it: protobuf-c takes a field numbered 0 written in a long varint as an unknown field (Go's
 * decoder refuses any field 0, and protobuf-c itself refuses it written in one byte, so such a message would
 * not even survive being packed and unpacked again). NULL: not a valid message (the caller answers
 * INVALID_ARGUMENT); free with protobuf_c_message_free_unpacked().
 */

#include <stddef.h>
#include <stdint.h>

#include "deviceplugin.pb-c.h"

V1beta1__AllocateRequest *allocate_request_unpack(const uint8_t *msg, size_t len);
V1beta1__PreferredAllocationRequest *preferred_request_unpack(const uint8_t *msg, size_t len);

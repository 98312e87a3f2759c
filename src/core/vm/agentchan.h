/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The guest agent's channel: a virtio-serial port named org.gpuvirt.agent.0 that gpuvirt-agent writes in
 * the guest (dev/virtio-ports/org.gpuvirt.agent.0) and gpuvirtd reads on the host through the unix socket
 * libvirt gives it (the source path in the running domain's XML).
 */

#define AGENT_CHANNEL_NAME "org.gpuvirt.agent.0"
/* The <channel> element `vm attach --agent-channel` and `vm xml --agent-channel` add: libvirt picks the
 * socket path (under /var/lib/libvirt/qemu/channel/target/) when the domain starts. */
#define AGENT_CHANNEL_XML                                                                                     \
        "<channel type='unix'>\n  <target type='virtio' name='" AGENT_CHANNEL_NAME "'/>\n</channel>\n"

/* Whether the domain XML has the agent channel: 1 (with *ret_path the unix source path when the XML names
 * one, else NULL; ret_path may be NULL), 0 when not, -EBADMSG when the XML does not parse (or libxml2 is
 * missing). In core/vm/libvirt.c, with the other domain XML readers (libxml2 is loaded there). */
int domain_xml_agent_channel(const char *xml, char **ret_path);

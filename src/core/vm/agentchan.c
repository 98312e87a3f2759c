/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

#include "core/vm/agentchan.h"
#include "basic/macro.h"

static bool elem_is(xmlNodePtr n, const char *name) {
        return n && n->type == XML_ELEMENT_NODE && streq((const char *)n->name, name);
}

static char *prop(xmlNodePtr n, const char *name) {
        xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
        char *s = v ? strdup((const char *)v) : NULL;
        xmlFree(v);
        return s;
}

int domain_xml_agent_channel(const char *xml, char **ret_path) {
        xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
        if (!elem_is(root, "domain")) {
                xmlFreeDoc(doc);
                return -EBADMSG;
        }
        int found = 0;
        char *path = NULL;
        for (xmlNodePtr d = root->children; d && !found; d = d->next) {
                if (!elem_is(d, "devices"))
                        continue;
                for (xmlNodePtr c = d->children; c && !found; c = c->next) {
                        if (!elem_is(c, "channel"))
                                continue;
                        _cleanup_free_ char *type = prop(c, "type");
                        xmlNodePtr target = NULL, source = NULL;
                        for (xmlNodePtr k = c->children; k; k = k->next) {
                                if (elem_is(k, "target"))
                                        target = k;
                                else if (elem_is(k, "source"))
                                        source = k;
                        }
                        _cleanup_free_ char *name = target ? prop(target, "name") : NULL;
                        if (!type || !streq(type, "unix") || !name || !streq(name, AGENT_CHANNEL_NAME))
                                continue;
                        found = 1;
                        path = source ? prop(source, "path") : NULL;
                }
        }
        xmlFreeDoc(doc);
        if (ret_path)
                *ret_path = path;
        else
                free(path);
        return found;
}

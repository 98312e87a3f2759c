/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* etc/default/grub, through the public functions that read and edit it (core/bootcfg.c): read, add the
 * IOMMU arguments, read again. Checked: no crash, leak or undefined behaviour, and a file the edit wrote
 * can be read again. (Whether the edit's arguments are what the next read sees is not asserted yet: the
 * grub parser is being rewritten to read the shell assignment as the shell does; corpus/grub/
 * unquoted-value is an input where today's parser loses them.) */
#include <string.h>

#include "basic/fileio.h"
#include "core/bootcfg.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Root *root = fuzz_root();
        _cleanup_free_ char *d = root_path(root, "etc/default");
        FUZZ_CHECK(d);
        (void)rm_rf(d);
        fuzz_write("etc/default/grub", data, size);
        BootConfig c;
        if (boot_config_read(root, &c) < 0)
                return 0;
        boot_config_done(&c);
        IommuEdit e = {};
        if (boot_config_set_args(root, "intel_iommu=on iommu=pt", "intel_iommu=off", &e) >= 0) {
                BootConfig c2;
                FUZZ_CHECK(boot_config_read(root, &c2) == 0);
                boot_config_done(&c2);
        }
        iommu_edit_done(&e);
        return 0;
}

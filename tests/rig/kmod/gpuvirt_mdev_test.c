// SPDX-License-Identifier: GPL-2.0-only
/*
 * gpuvirt test module (rig only): make a PCI display function an mdev parent, so that the PCI layout of
 * NVIDIA GRID and Intel GVT-g hosts (sys/bus/pci/devices/<bdf>/mdev_supported_types/<driver>-<type>/,
 * sys/class/mdev_bus/<bdf>) is exercised on the real mdev core.
 *
 * It does not drive the device: it only hangs mediated devices off the PCI function given by 'bdf'
 * (the rig's bochs-display, still bound to bochs-drm; the mdev core names the types after that driver,
 * as it names NVIDIA's "nvidia-NNN"). Each mdev is an emulated-IOMMU VFIO device with no regions.
 *
 * Types mimic NVIDIA's time-sliced vGPU: descriptions in NVIDIA's format, instances counted by the
 * driver from a budget of 'units' (ENOSPC when exhausted), and with one_type=1 only one type at a time
 * on the parent (EINVAL otherwise), as the NVIDIA driver enforces.
 */
#include <linux/module.h>
#include <linux/mdev.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/vfio.h>

static char *bdf;
module_param(bdf, charp, 0444);
MODULE_PARM_DESC(bdf, "PCI function to become the mdev parent (DDDD:BB:DD.F)");
static unsigned int units = 8;
module_param(units, uint, 0444);
MODULE_PARM_DESC(units, "instance budget shared by the types (a 1q costs 1, a 2q 2, a 4q 4)");
static bool one_type = true;
module_param(one_type, bool, 0444);
MODULE_PARM_DESC(one_type, "refuse (EINVAL) a type while another type has instances, as NVIDIA does");

struct gt_type {
	struct mdev_type type;
	unsigned int cost;
	unsigned int fb_mb;
	unsigned int count; /* live instances, under gt_lock */
};

static struct gt_type gt_types[] = {
	{ .type = { .sysfs_name = "1q", .pretty_name = "GPUVIRT-TEST-1Q" }, .cost = 1, .fb_mb = 1024 },
	{ .type = { .sysfs_name = "2q", .pretty_name = "GPUVIRT-TEST-2Q" }, .cost = 2, .fb_mb = 2048 },
	{ .type = { .sysfs_name = "4q", .pretty_name = "GPUVIRT-TEST-4Q" }, .cost = 4, .fb_mb = 4096 },
};
static struct mdev_type *gt_type_list[] = { &gt_types[0].type, &gt_types[1].type, &gt_types[2].type };

static DEFINE_MUTEX(gt_lock);
static unsigned int gt_used; /* units in use, under gt_lock */

struct gt_state {
	struct vfio_device vdev;
	struct gt_type *type;
};

static struct gt_type *to_gt_type(struct mdev_type *t)
{
	return container_of(t, struct gt_type, type);
}

static bool other_type_in_use(const struct gt_type *t)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(gt_types); i++)
		if (&gt_types[i] != t && gt_types[i].count)
			return true;
	return false;
}

static long gt_ioctl(struct vfio_device *vdev, unsigned int cmd, unsigned long arg)
{
	return -ENOTTY;
}

/* 6.1 calls @release unconditionally when the last reference goes: it must free the device itself */
static void gt_release(struct vfio_device *vdev)
{
	vfio_free_device(vdev);
}

static const struct vfio_device_ops gt_ops = {
	.name = "gpuvirt-mdev-test",
	.release = gt_release,
	.ioctl = gt_ioctl,
};

static int gt_probe(struct mdev_device *mdev)
{
	struct gt_type *t = to_gt_type(mdev->type);
	struct gt_state *s;
	int ret;

	mutex_lock(&gt_lock);
	if (one_type && other_type_in_use(t)) {
		mutex_unlock(&gt_lock);
		return -EINVAL;
	}
	if (gt_used + t->cost > units) {
		mutex_unlock(&gt_lock);
		return -ENOSPC;
	}
	gt_used += t->cost;
	t->count++;
	mutex_unlock(&gt_lock);

	s = vfio_alloc_device(gt_state, vdev, &mdev->dev, &gt_ops);
	if (IS_ERR(s)) {
		ret = PTR_ERR(s);
		goto undo;
	}
	s->type = t;
	ret = vfio_register_emulated_iommu_dev(&s->vdev);
	if (ret) {
		vfio_put_device(&s->vdev);
		goto undo;
	}
	dev_set_drvdata(&mdev->dev, s);
	return 0;
undo:
	mutex_lock(&gt_lock);
	gt_used -= t->cost;
	t->count--;
	mutex_unlock(&gt_lock);
	return ret;
}

static void gt_remove(struct mdev_device *mdev)
{
	struct gt_state *s = dev_get_drvdata(&mdev->dev);
	struct gt_type *t = s->type;

	/* waits until the last user of the device (QEMU) closes it */
	vfio_unregister_group_dev(&s->vdev);
	vfio_put_device(&s->vdev);
	mutex_lock(&gt_lock);
	gt_used -= t->cost;
	t->count--;
	mutex_unlock(&gt_lock);
}

static unsigned int gt_available(struct mdev_type *mt)
{
	struct gt_type *t = to_gt_type(mt);
	unsigned int n;

	mutex_lock(&gt_lock);
	n = one_type && other_type_in_use(t) ? 0 : (units - gt_used) / t->cost;
	mutex_unlock(&gt_lock);
	return n;
}

static ssize_t gt_description(struct mdev_type *mt, char *buf)
{
	struct gt_type *t = to_gt_type(mt);

	return sysfs_emit(buf, "num_heads=1, frl_config=60, framebuffer=%uM, max_resolution=1280x1024, max_instance=%u\n",
			  t->fb_mb, units / t->cost);
}

static struct mdev_driver gt_driver = {
	.device_api = VFIO_DEVICE_API_PCI_STRING,
	.driver = {
		.name = "gpuvirt_mdev_test",
		.owner = THIS_MODULE,
		.mod_name = KBUILD_MODNAME,
	},
	.probe = gt_probe,
	.remove = gt_remove,
	.get_available = gt_available,
	.show_description = gt_description,
};

static struct mdev_parent gt_parent;
static struct pci_dev *gt_pdev;

static int __init gt_init(void)
{
	unsigned int dom, bus, slot, fn;
	int ret;

	if (!bdf || sscanf(bdf, "%x:%x:%x.%x", &dom, &bus, &slot, &fn) != 4 || slot > 31 || fn > 7) {
		pr_err("gpuvirt_mdev_test: give bdf=DDDD:BB:DD.F\n");
		return -EINVAL;
	}
	gt_pdev = pci_get_domain_bus_and_slot(dom, bus, PCI_DEVFN(slot, fn));
	if (!gt_pdev)
		return -ENODEV;
	ret = mdev_register_driver(&gt_driver);
	if (ret)
		goto put;
	ret = mdev_register_parent(&gt_parent, &gt_pdev->dev, &gt_driver, gt_type_list,
				   ARRAY_SIZE(gt_type_list));
	if (ret)
		goto unreg;
	return 0;
unreg:
	mdev_unregister_driver(&gt_driver);
put:
	pci_dev_put(gt_pdev);
	return ret;
}

static void __exit gt_exit(void)
{
	mdev_unregister_parent(&gt_parent);
	mdev_unregister_driver(&gt_driver);
	pci_dev_put(gt_pdev);
}

module_init(gt_init);
module_exit(gt_exit);
MODULE_LICENSE("GPL v2");
MODULE_DESCRIPTION("gpuvirt test: a PCI function as mediated device parent");

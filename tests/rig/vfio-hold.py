#!/usr/bin/python3
# Hold a VFIO device open as QEMU does: container, group, IOMMU type, device fd. Prints "HELD" and
# sleeps until killed. usage: vfio-hold.py GROUP DEVICE_NAME (a PCI address or an mdev UUID)
import fcntl, os, struct, sys, time

VFIO = 0x3B << 8  # _IO(VFIO_TYPE ';', VFIO_BASE 100 + n)
GET_API_VERSION, SET_IOMMU, GROUP_GET_STATUS = VFIO | 100, VFIO | 102, VFIO | 103
GROUP_SET_CONTAINER, GROUP_GET_DEVICE_FD = VFIO | 104, VFIO | 106
TYPE1_IOMMU, TYPE1v2_IOMMU = 1, 3

group, name = sys.argv[1], sys.argv[2]
container = os.open("/dev/vfio/vfio", os.O_RDWR)
assert fcntl.ioctl(container, GET_API_VERSION) == 0
g = os.open("/dev/vfio/" + group, os.O_RDWR)
argsz_flags = fcntl.ioctl(g, GROUP_GET_STATUS, struct.pack("II", 8, 0))
if not struct.unpack("II", argsz_flags)[1] & 1:
    sys.exit("group %s is not viable" % group)
fcntl.ioctl(g, GROUP_SET_CONTAINER, struct.pack("i", container))
try:
    fcntl.ioctl(container, SET_IOMMU, TYPE1v2_IOMMU)
except OSError:
    fcntl.ioctl(container, SET_IOMMU, TYPE1_IOMMU)
# with a buffer argument the ioctl's return value (the device fd) is not returned, but the fd stays open
fcntl.ioctl(g, GROUP_GET_DEVICE_FD, name.encode() + b"\0")
print("HELD", flush=True)
while True:
    time.sleep(3600)

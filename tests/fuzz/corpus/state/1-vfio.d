1{"driver":"vfio-pci","force":true,"include":["0000:03:00.0"]}

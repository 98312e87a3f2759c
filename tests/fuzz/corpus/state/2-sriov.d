2{"num_vfs":8,"vfio":true}

// The engine's own mesh header, with the same short path as one of nmesh's ("mesh/device_mesh.h");
// see comm/communicator.h beside it.
#ifdef ENGINE_MESH_DEVICE_MESH_H_
#error "the engine's mesh/device_mesh.h was included again: an nmesh header found it by short path"
#endif
#define ENGINE_MESH_DEVICE_MESH_H_

namespace engine {
struct DeviceMesh {
  int ndim = 0;
};
}  // namespace engine

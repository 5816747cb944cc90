// The engine's own communicator header, with the same short path as one of nmesh's
// ("comm/communicator.h"), first on the consumer's include path. The engine includes it exactly
// once, so a second inclusion means an installed nmesh header included its sibling by short path
// and picked this file up instead: that must fail the build.
#ifdef ENGINE_COMM_COMMUNICATOR_H_
#error "the engine's comm/communicator.h was included again: an nmesh header found it by short path"
#endif
#define ENGINE_COMM_COMMUNICATOR_H_

namespace engine {
// Deliberately unlike nmesh::comm::Communicator.
struct Communicator {
  int handle = 0;
};
}  // namespace engine

// Built when dsrt has no collective backend (Gloo not found at configure time).
#include "runtime/dist/communicator.h"

namespace ds {

bool have_collectives() { return false; }

Result<std::vector<std::unique_ptr<Communicator>>> create_local_group(int size, const CommOptions&) {
  return Status::Error(StrCat() << "tensor parallelism (" << size
                                << " ranks) needs collectives, but this dsrt was built without Gloo "
                                   "(install libgloo-dev and reconfigure with -DDS_ENABLE_GLOO=ON)");
}

Result<std::unique_ptr<Communicator>> connect_group(const DistInitOptions& options) {
  return Status::Error(StrCat() << "multi-process tensor parallelism (" << options.size
                                << " ranks) needs collectives, but this dsrt was built without Gloo");
}

Result<std::vector<std::unique_ptr<Communicator>>> connect_local_ranks(const Communicator&, int local) {
  return Status::Error(StrCat() << "tensor parallelism (" << local
                                << " ranks per process) needs collectives, but this dsrt was built without Gloo");
}

}  // namespace ds

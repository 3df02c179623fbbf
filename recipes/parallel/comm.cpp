#include "recipes/parallel/comm.h"

#include <cstdlib>
#include <cstring>

#include "autograd/error.h"

namespace hone {

namespace {

// This process alone: every collective is a copy of its own block.
class LocalComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void send(int, const void*, size_t) override {
    throw Error("internal: send in a single-process run");
  }
  void recv(int, void*, size_t) override { throw Error("internal: recv in a single-process run"); }
  void exchange(const std::vector<Piece>& sends, const std::vector<Piece>& recvs) override {
    if (sends.size() != recvs.size()) throw Error("internal: unmatched exchange");
    for (size_t i = 0; i < sends.size(); ++i) {
      if (sends[i].count != recvs[i].count) throw Error("internal: exchange sizes differ");
      std::memcpy(recvs[i].data, sends[i].data, static_cast<size_t>(sends[i].count) * 4);
    }
  }
  void allgatherv(float*, const std::vector<int64_t>&) override {}
  void allgatherv_bytes(void*, const std::vector<int64_t>&) override {}
  void allgather(const void* in, void* out, size_t bytes) override {
    if (bytes) std::memmove(out, in, bytes);
  }
  void broadcast(void*, size_t, int) override {}
  void barrier() override {}
  std::unique_ptr<Comm> split(int, int) override { return std::make_unique<LocalComm>(); }
};

}  // namespace

#ifdef HONE_HAVE_MPI
// comm_mpi.cpp
std::string mpi_library_version();
Comm* mpi_world();
void mpi_finalize();
void mpi_abort(int code);
#endif

bool launched_by_mpi() {
#ifdef HONE_HAVE_MPI
  // OpenMPI's mpirun, PMIx (srun --mpi=pmix, mpirun of other MPIs) and PMI-1/2 launchers.
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(var)) return true;
#endif
  return false;
}

Comm& local_comm() {
  static LocalComm local;
  return local;
}

Comm& world() {
#ifdef HONE_HAVE_MPI
  if (launched_by_mpi()) return *mpi_world();
#endif
  return local_comm();
}

void finalize_world() {
#ifdef HONE_HAVE_MPI
  if (launched_by_mpi()) mpi_finalize();
#endif
}

void abort_world(int code) {
#ifdef HONE_HAVE_MPI
  if (launched_by_mpi()) mpi_abort(code);
#else
  (void)code;
#endif
}

std::string mpi_library() {
#ifdef HONE_HAVE_MPI
  return mpi_library_version();
#else
  return "";
#endif
}

std::string rank_prefix() {
  if (!launched_by_mpi()) return "";
  Comm& w = world();
  return w.size() > 1 ? "rank " + std::to_string(w.rank()) + ": " : "";
}

}  // namespace hone

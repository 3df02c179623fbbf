// Every MPI call of hone. Compiled only when CMake finds MPI (HONE_HAVE_MPI).
// The C API only: OpenMPI's and MPICH's deprecated C++ bindings need libraries we do not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstring>
#include <list>

#include "autograd/error.h"
#include "recipes/parallel/comm.h"

namespace hone {

namespace {

// MPI counts are int: longer blocks go as several messages, split the same way on both sides.
constexpr int64_t kChunk = int64_t{1} << 30;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string("MPI ") + what + ": " + std::string(msg, static_cast<size_t>(len)));
}

class MpiComm final : public Comm {
 public:
  MpiComm(MPI_Comm c, bool owned) : comm_(c), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiComm() override {
    drain_sends();
    if (owned_) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  // Buffered: the data is copied and sent in the background, so two neighbours sending to each
  // other at once (a pipeline's activations one way, gradients the other) cannot deadlock.
  void send(int to, const void* data, size_t bytes) override {
    reap_sends();
    pending_.emplace_back();
    Pending& p = pending_.back();
    p.buf.assign(static_cast<const char*>(data), static_cast<const char*>(data) + bytes);
    for (int64_t off = 0; off < static_cast<int64_t>(bytes) || off == 0; off += kChunk) {
      const int n = static_cast<int>(std::min<int64_t>(kChunk, static_cast<int64_t>(bytes) - off));
      p.reqs.emplace_back();
      check(MPI_Isend(p.buf.data() + off, n, MPI_BYTE, to, 0, comm_, &p.reqs.back()), "send");
      if (bytes == 0) break;
    }
    bytes_sent_ += static_cast<int64_t>(bytes);
  }
  void recv(int from, void* data, size_t bytes) override {
    for (int64_t off = 0; off < static_cast<int64_t>(bytes) || off == 0; off += kChunk) {
      const int n = static_cast<int>(std::min<int64_t>(kChunk, static_cast<int64_t>(bytes) - off));
      check(
          MPI_Recv(static_cast<char*>(data) + off, n, MPI_BYTE, from, 0, comm_, MPI_STATUS_IGNORE),
          "recv");
      if (bytes == 0) break;
    }
    reap_sends();
  }

  void exchange(const std::vector<Piece>& sends, const std::vector<Piece>& recvs) override {
    std::vector<MPI_Request> reqs;
    auto post = [&](const Piece& p, bool is_send) {
      for (int64_t off = 0; off < p.count; off += kChunk) {
        const int n = static_cast<int>(std::min(kChunk, p.count - off));
        reqs.emplace_back();
        if (is_send)
          check(MPI_Isend(p.data + off, n, MPI_FLOAT, p.peer, 1, comm_, &reqs.back()), "exchange");
        else
          check(MPI_Irecv(p.data + off, n, MPI_FLOAT, p.peer, 1, comm_, &reqs.back()), "exchange");
      }
    };
    for (const Piece& p : recvs) post(p, false);
    for (const Piece& p : sends) {
      post(p, true);
      if (p.peer != rank_) bytes_sent_ += p.count * 4;
    }
    check(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE), "exchange");
  }

  void allgatherv(float* out, const std::vector<int64_t>& counts) override {
    gatherv(out, counts, MPI_FLOAT, 4);
  }
  void allgatherv_bytes(void* out, const std::vector<int64_t>& counts) override {
    gatherv(out, counts, MPI_BYTE, 1);
  }
  void allgather(const void* in, void* out, size_t bytes) override {
    check(MPI_Allgather(in, static_cast<int>(bytes), MPI_BYTE, out, static_cast<int>(bytes),
                        MPI_BYTE, comm_),
          "allgather");
    bytes_sent_ += static_cast<int64_t>(bytes) * (size_ - 1);
  }
  void broadcast(void* data, size_t bytes, int root) override {
    for (int64_t off = 0; off < static_cast<int64_t>(bytes); off += kChunk) {
      const int n = static_cast<int>(std::min<int64_t>(kChunk, static_cast<int64_t>(bytes) - off));
      check(MPI_Bcast(static_cast<char*>(data) + off, n, MPI_BYTE, root, comm_), "broadcast");
    }
    if (rank_ == root) bytes_sent_ += static_cast<int64_t>(bytes) * (size_ - 1);
  }
  void barrier() override {
    drain_sends();
    check(MPI_Barrier(comm_), "barrier");
  }
  std::unique_ptr<Comm> split(int color, int key) override {
    MPI_Comm sub;
    check(MPI_Comm_split(comm_, color, key, &sub), "split");
    return std::make_unique<MpiComm>(sub, true);
  }

 private:
  struct Pending {
    std::vector<char> buf;
    std::vector<MPI_Request> reqs;
  };
  // In-place allgatherv of counts[r] elements of `type` (`size` bytes) from each rank r.
  void gatherv(void* out, const std::vector<int64_t>& counts, MPI_Datatype type, int size) {
    std::vector<int> n(counts.size()), displs(counts.size());
    int64_t at = 0;
    for (size_t r = 0; r < counts.size(); ++r) {
      if (at + counts[r] > INT_MAX) throw Error("MPI allgatherv: more than 2^31 elements");
      n[r] = static_cast<int>(counts[r]);
      displs[r] = static_cast<int>(at);
      at += counts[r];
    }
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out, n.data(), displs.data(), type,
                         comm_),
          "allgatherv");
    bytes_sent_ += counts[static_cast<size_t>(rank_)] * size * (size_ - 1);
  }
  void reap_sends() {
    for (auto it = pending_.begin(); it != pending_.end();) {
      int done = 0;
      MPI_Testall(static_cast<int>(it->reqs.size()), it->reqs.data(), &done, MPI_STATUSES_IGNORE);
      it = done ? pending_.erase(it) : std::next(it);
    }
  }
  void drain_sends() {
    for (Pending& p : pending_)
      MPI_Waitall(static_cast<int>(p.reqs.size()), p.reqs.data(), MPI_STATUSES_IGNORE);
    pending_.clear();
  }

  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  std::list<Pending> pending_;
};

MpiComm* g_world = nullptr;

}  // namespace

std::string mpi_library_version() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);  // callable before MPI_Init
  std::string s(v, static_cast<size_t>(len));
  return s.substr(0, s.find_first_of(",\n"));
}

Comm* mpi_world() {
  if (!g_world) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      // Only the main thread calls MPI; TBB and OpenBLAS workers never do.
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    }
    g_world = new MpiComm(MPI_COMM_WORLD, false);
  }
  return g_world;
}

void mpi_finalize() {
  if (!g_world) return;
  delete g_world;
  g_world = nullptr;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void mpi_abort(int code) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited) MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace hone

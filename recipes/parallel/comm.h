// The process group a run trains in: the one interface to MPI. comm_mpi.cpp holds every MPI call;
// without mpirun/srun (or in a build without MPI) the group is this process alone, and every
// collective is a copy, so the single-process path runs the same code with no MPI at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hone {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Point to point, blocking; messages between two ranks arrive in the order they were sent.
  virtual void send(int to, const void* data, size_t bytes) = 0;
  virtual void recv(int from, void* data, size_t bytes) = 0;

  // One float block to or from a peer, for exchange().
  struct Piece {
    int peer = 0;
    float* data = nullptr;  // read for a send, written for a receive
    int64_t count = 0;
  };
  // Every send and receive posted at once and completed together: pieces between two ranks are
  // matched in the order they are listed on each side. Pieces to oneself are copies.
  virtual void exchange(const std::vector<Piece>& sends, const std::vector<Piece>& recvs) = 0;
  // counts[r] floats from each rank r, gathered into out (Σ counts) in rank order on every rank;
  // this rank's own block is already in place at its offset.
  virtual void allgatherv(float* out, const std::vector<int64_t>& counts) = 0;
  // The same with byte counts, for blocks of other types (each rank's block in place in out).
  virtual void allgatherv_bytes(void* out, const std::vector<int64_t>& byte_counts) = 0;
  // `bytes` from every rank into out (size() × bytes) in rank order, on every rank.
  virtual void allgather(const void* in, void* out, size_t bytes) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // The ranks of the same color, ordered by key then rank.
  virtual std::unique_ptr<Comm> split(int color, int key) = 0;

  // Payload bytes this process has sent through any group (point to point and its share of the
  // collectives: its own block to each other rank), for the per-step communication figure.
  static int64_t bytes_sent() { return bytes_sent_; }

 protected:
  inline static int64_t bytes_sent_ = 0;
};

// The whole group: MPI_COMM_WORLD when the process was started by mpirun or srun (MPI is
// initialised on the first call), else this process alone. Lives until finalize_world().
Comm& world();
// This process alone, for callers that run outside any group.
Comm& local_comm();
// Whether world() spans more than this process.
bool launched_by_mpi();
// Ends MPI cleanly (every rank, at the end of main); a no-op without MPI.
void finalize_world();
// Ends every rank of the job at once with `code` (one rank failed alone); returns when not
// under MPI.
void abort_world(int code);
// The MPI library hone was built with ("Open MPI v4.1.4, ..."), or "" in a build without MPI.
std::string mpi_library();
// "rank R: " when the job has several ranks, "" otherwise: for messages.
std::string rank_prefix();

// Every rank's value of a small trivially-copyable T, in rank order.
template <typename T>
std::vector<T> allgather_value(Comm& c, const T& v) {
  std::vector<T> out(static_cast<size_t>(c.size()));
  c.allgather(&v, out.data(), sizeof(T));
  return out;
}

}  // namespace hone

// metrics.jsonl: one JSON object per line, appended as the run goes. Every write is checked: a
// full disk or a failing device stops the run with an error naming the file and the OS reason,
// rather than leaving a metrics file that silently ends early.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace hone {

class MetricsLog {
 public:
  // Replaces `path` atomically with `initial` (the metrics of a resumed run so far, "" for a new
  // run), then opens it for appending. Throws Error naming `path` on failure.
  MetricsLog(std::string path, std::string initial);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Appends record as one line; throws Error("<path>: cannot write metrics: <strerror>").
  void add(const nlohmann::json& record);
  // fsyncs and closes the file, reporting what the device deferred (EIO, ENOSPC on NFS).
  void close();
  // Everything written so far (checkpoints carry it, so a resumed run rewrites it whole).
  const std::string& text() const { return text_; }

 private:
  std::string path_, text_;
  int fd_ = -1;
};

}  // namespace hone

// A read-mostly memory map of a whole file, shared by the tensors that point into it.
// Mapped private and writable (copy-on-write): code that edits a frozen weight in place (e.g. a
// LoRA merge) gets its own pages and never touches the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace hone {

struct MappedFile {
  std::string path;
  uint8_t* data = nullptr;
  size_t size = 0;
  ~MappedFile();
};

// Throws Error("<path>: ...") when the file cannot be opened or mapped. An empty file maps to
// data == nullptr, size 0.
std::shared_ptr<MappedFile> map_file(const std::string& path);

}  // namespace hone

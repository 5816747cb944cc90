#include "nmesh/comm/watch/record_codec.h"

#include <algorithm>
#include <cstring>

namespace nmesh::comm::internal {
namespace {

// The header, `count` OpRecords, then `axes` entries, each an AxisHeader followed by its
// `members` global ranks (int64).
struct Header {
  int64_t now_ns;
  int64_t count;
  int64_t axes;
  char blocked_in[160];  // NUL-terminated, truncated
};
struct AxisHeader {
  char axis[64];  // NUL-terminated, truncated
  uint64_t group;
  uint64_t entered;
  OpRecord waiting;
  int64_t members;
};

template <size_t N>
void CopyText(const std::string& text, char (&out)[N]) {
  const size_t n = std::min(text.size(), N - 1);
  std::memcpy(out, text.data(), n);
  std::memset(out + n, 0, N - n);
}

void Append(std::string& bytes, const void* data, size_t size) {
  bytes.append(static_cast<const char*>(data), size);
}

// An OpRecord's enumerations as read from another process: out of range becomes a valid value,
// so that nothing downstream indexes a table with it.
void Sanitize(OpRecord& record) {
  if (!IsOpKind(record.op)) record.op = OpKind::kBarrier;
  if (static_cast<uint8_t>(record.state) > static_cast<uint8_t>(OpState::kFailed)) {
    record.state = OpState::kFailed;
  }
  if (static_cast<uint8_t>(record.type) > static_cast<uint8_t>(DataType::kFloat64)) {
    record.type = DataType::kUint8;
  }
}

}  // namespace

std::string EncodeRecords(const std::vector<OpRecord>& records, const ProcessState& state,
                          int64_t now_ns) {
  Header header{};
  header.now_ns = now_ns;
  header.count = static_cast<int64_t>(records.size());
  header.axes = static_cast<int64_t>(state.axes.size());
  CopyText(state.blocked_in, header.blocked_in);
  std::string bytes;
  Append(bytes, &header, sizeof(header));
  Append(bytes, records.data(), records.size() * sizeof(OpRecord));
  for (const AxisProgress& axis : state.axes) {
    AxisHeader a{};
    CopyText(axis.axis, a.axis);
    a.group = axis.group;
    a.entered = axis.entered;
    a.waiting = axis.waiting;
    a.members = static_cast<int64_t>(axis.members.size());
    Append(bytes, &a, sizeof(a));
    Append(bytes, axis.members.data(), axis.members.size() * sizeof(int64_t));
  }
  return bytes;
}

bool DecodeRecords(std::string_view bytes, RankRecords* entry) {
  size_t at = 0;
  auto read = [&](void* out, size_t size) {
    if (bytes.size() - at < size) return false;
    if (size == 0) return true;  // `out` may be an empty vector's null data()
    std::memcpy(out, bytes.data() + at, size);
    at += size;
    return true;
  };
  Header header;
  if (!read(&header, sizeof(header))) return false;
  entry->answered = true;
  entry->now_ns = header.now_ns;
  header.blocked_in[sizeof(header.blocked_in) - 1] = '\0';
  entry->blocked_in = header.blocked_in;
  const size_t n = std::min<size_t>(static_cast<size_t>(std::max<int64_t>(header.count, 0)),
                                    (bytes.size() - at) / sizeof(OpRecord));
  entry->records.resize(n);
  read(entry->records.data(), n * sizeof(OpRecord));
  for (OpRecord& record : entry->records) Sanitize(record);
  entry->axes.clear();
  for (int64_t i = 0; i < header.axes; ++i) {
    AxisHeader a;
    if (!read(&a, sizeof(a)) || a.members < 0 ||
        static_cast<size_t>(a.members) > (bytes.size() - at) / sizeof(int64_t)) {
      break;
    }
    a.axis[sizeof(a.axis) - 1] = '\0';
    Sanitize(a.waiting);
    AxisProgress axis{a.axis, a.group, std::vector<int64_t>(static_cast<size_t>(a.members)),
                      a.entered, a.waiting};
    read(axis.members.data(), axis.members.size() * sizeof(int64_t));
    entry->axes.push_back(std::move(axis));
  }
  return true;
}

}  // namespace nmesh::comm::internal

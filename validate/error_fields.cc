#include "nmesh/validate/error_fields.h"

#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/str_split.h"

namespace nmesh::validate {

// The payload is the subject, then each named field, one a line.
absl::Status WithFields(absl::Status status, std::string_view subject,
                        absl::Span<const std::string_view> named) {
  if (status.ok()) return status;
  std::string text(subject);
  for (std::string_view field : named) {
    text += '\n';
    text += field;
  }
  status.SetPayload(std::string(kFieldsPayloadUrl), absl::Cord(text));
  return status;
}

absl::Status FieldError(std::string_view field, std::string_view message) {
  return WithFields(absl::InvalidArgumentError(std::string(message)), field, {field});
}

ErrorFields FieldsOf(const absl::Status& status) {
  ErrorFields fields;
  const auto payload = status.GetPayload(std::string(kFieldsPayloadUrl));
  if (!payload.has_value()) return fields;
  std::vector<std::string> lines = absl::StrSplit(std::string(*payload), '\n');
  fields.subject = lines.front();
  fields.named.assign(lines.begin() + 1, lines.end());
  return fields;
}

absl::Status MarkAnnotated(absl::Status status) {
  if (status.ok()) return status;
  status.SetPayload(std::string(kAnnotatedPayloadUrl), absl::Cord());
  return status;
}

bool IsAnnotated(const absl::Status& status) {
  return status.GetPayload(std::string(kAnnotatedPayloadUrl)).has_value();
}

}  // namespace nmesh::validate

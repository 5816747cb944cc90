// Which input fields an error is about, carried in the absl::Status itself (a payload under
// kFieldsPayloadUrl), so that a caller can point at where each field was set, a recipe's
// file:line:col or a command-line flag, without reading the message.
//
//   absl::Status error = FieldError("tp_size", "tp_size must be a positive integer, got 0");
//   FieldsOf(error).subject;          // "tp_size"
//
//   absl::Status sum = WithFields(absl::InvalidArgumentError("world_size (8) must be divisible by "
//                                                            "(tp_size * cp_size) (3 * 1 = 3)"),
//                                 /*subject=*/"", {"world_size", "tp_size", "cp_size"});
//   FieldsOf(sum).named;              // {"world_size", "tp_size", "cp_size"}
//
// The fields are the names the messages use ("dp_size", "world_size").
//
// A second payload marks an error whose message already says where its input was set, so that
// context is added once, whatever the message's text:
//
//   absl::Status located = MarkAnnotated(absl::InvalidArgumentError("... (recipe.yaml:3:12)"));
//   IsAnnotated(located);             // true
//
// Every function here is pure and thread-safe.
#ifndef NMESH_VALIDATE_ERROR_FIELDS_H_
#define NMESH_VALIDATE_ERROR_FIELDS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace nmesh::validate {

// The payload's type URL.
inline constexpr std::string_view kFieldsPayloadUrl = "nmesh.field";

struct ErrorFields {
  // The field the error is about when it is about one ("tp_size must be a positive integer, got
  // 0"); empty when it is about several together ("world_size (8) must be divisible by ...").
  std::string subject;
  // Every input field the message names, in the order it names them (the subject first).
  std::vector<std::string> named;

  friend bool operator==(const ErrorFields&, const ErrorFields&) = default;
};

// `status` with the fields attached (replacing any attached before). An OK status stays OK.
absl::Status WithFields(absl::Status status, std::string_view subject,
                        absl::Span<const std::string_view> named);

// InvalidArgument(`message`) about `field` alone.
absl::Status FieldError(std::string_view field, std::string_view message);

// The fields attached to `status`; empty when none are.
ErrorFields FieldsOf(const absl::Status& status);

// The type URL of the payload that marks an error as annotated.
inline constexpr std::string_view kAnnotatedPayloadUrl = "nmesh.annotated";

// `status` marked as annotated: its message already says where the input it is about was set
// (e.g. a recipe's file:line:col). An OK status stays OK; the message and the fields are kept.
absl::Status MarkAnnotated(absl::Status status);

// Whether `status` is marked as annotated (MarkAnnotated).
bool IsAnnotated(const absl::Status& status);

}  // namespace nmesh::validate

#endif  // NMESH_VALIDATE_ERROR_FIELDS_H_

// Internal: a recipe's YAML document, built from yaml-cpp's parser events (YAML::Parser with a
// YAML::EventHandler) into a compact read-only tree, with memory bounded by a small multiple of the
// text whatever its shape. Not installed; public headers never include yaml-cpp.
//
//   NMESH_ASSIGN_OR_RETURN(DocNode root, LoadDocument(text, "recipe.yaml", {"distributed"}));
//   for (auto it = root.begin(); it != root.end(); ++it) Use(it->first.Scalar(), it->second);
//
// DocNode reads like a YAML::Node from YAML::Load (the same marks, tags, scalars, aliases shared,
// map pairs in document order with duplicates kept), with these bounds:
//  - top-level entries whose key is not in `read_keys` are not built (and are absent from the
//    root map) unless an entry that is kept refers into them by alias; of those whose key is, the
//    first read_keys.size() + 1 are (any later one repeats a key, and the recipe reader stops at
//    the first repeated key);
//  - at most kMaxBuiltNodes nodes are built below the top-level entries; a collection whose
//    children did not all fit is `partial()`: its kind, tag, mark and size() are known, its
//    children past the first ones are not (Value refuses to read them, naming the file);
//  - a document with more than kMaxAnchors anchors (&name) is refused.
// Thread-safe to read once loaded (nodes share an immutable tree).
#ifndef NMESH_CONFIG_INTERNAL_YAML_DOCUMENT_H_
#define NMESH_CONFIG_INTERNAL_YAML_DOCUMENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "yaml-cpp/mark.h"

namespace nmesh::config::internal {

// Nodes built below a document's top-level entries; a recipe has a few hundred. Enough for a map
// of 100,000 keys (Value::Entries refuses more).
inline constexpr int64_t kMaxBuiltNodes = int64_t{1} << 18;
// Anchors in a document; a recipe has a handful.
inline constexpr int64_t kMaxAnchors = 10000;

class Document;

// A node of a loaded document, or an undefined node (default-constructed).
class DocNode {
 public:
  class MapIterator;

  DocNode() = default;

  bool IsDefined() const { return document_ != nullptr; }
  bool IsNull() const;
  bool IsScalar() const;
  bool IsSequence() const;
  bool IsMap() const;
  // Whether some children of this collection were not built (see the file comment).
  bool partial() const;
  // Items of a sequence, or keys of a map, as in the file (built or not); 0 otherwise.
  size_t size() const;
  // Where the node starts; Mark::null_mark() when unknown (an empty document).
  YAML::Mark Mark() const;
  // The scalar's text ("" for non-scalars) and the tag ("?" plain, "!" quoted, "" null).
  std::string Scalar() const;
  std::string Tag() const;
  // Item `i` of a sequence (undefined when not built or out of range).
  DocNode operator[](size_t i) const;
  // The built pairs of a map, in document order.
  MapIterator begin() const;
  MapIterator end() const;

 private:
  friend class Document;
  DocNode(std::shared_ptr<const Document> document, uint32_t index)
      : document_(std::move(document)), index_(index) {}

  std::shared_ptr<const Document> document_;
  uint32_t index_ = 0;
};

class DocNode::MapIterator {
 public:
  const std::pair<DocNode, DocNode>* operator->() const { return &pair_; }
  const std::pair<DocNode, DocNode>& operator*() const { return pair_; }
  MapIterator& operator++();
  bool operator==(const MapIterator& other) const { return position_ == other.position_; }
  bool operator!=(const MapIterator& other) const { return position_ != other.position_; }

 private:
  friend class DocNode;
  MapIterator(const DocNode& map, size_t position);

  DocNode map_;
  size_t position_ = 0;  // the pair's index among the built ones
  std::pair<DocNode, DocNode> pair_;
};

// Parses `text` (read from `file`) as the single YAML document a recipe is, as YAML::Load would,
// keeping the top-level entries named in `read_keys` (and what they refer to by alias). Throws
// what yaml-cpp throws on malformed YAML (YAML::ParserException, YAML::DeepRecursion). A second
// document is InvalidArgument naming where it starts (PyYAML's safe_load refuses it too); so are
// more than kMaxAnchors anchors and a text over 1 GiB, naming the file.
absl::StatusOr<DocNode> LoadDocument(std::string_view text, std::string_view file,
                                     const std::vector<std::string_view>& read_keys);

}  // namespace nmesh::config::internal

#endif  // NMESH_CONFIG_INTERNAL_YAML_DOCUMENT_H_

#include "nmesh/config/internal/yaml_document.h"

#include <algorithm>
#include <istream>
#include <limits>
#include <streambuf>

#include "absl/strings/str_format.h"
#include "yaml-cpp/anchor.h"
#include "yaml-cpp/emitterstyle.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"

namespace nmesh::config::internal {

namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
// Offsets into a document are 32-bit.
constexpr size_t kMaxTextBytes = size_t{1} << 30;

std::string FormatMark(std::string_view file, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return std::string(file);
  return absl::StrFormat("%s:%d:%d", file, mark.line + 1, mark.column + 1);
}

// yaml-cpp's scanner keeps about 48 bytes for every value written in block style (an indentation
// record per potential key, freed only with the parser): a list of `- 1` lines costs 12 times its
// text. A document may have one such value per kBytesPerBlockValue bytes, plus kFreeBlockValues.
constexpr size_t kBytesPerBlockValue = 10;
constexpr size_t kFreeBlockValues = 65536;

// What a handler throws to stop the parse at a limit.
struct LimitHit {
  enum class What { kAnchors, kBlockValues, kSize };
  What what = What::kSize;
  YAML::Mark mark;
};

// The text as a stream without copying it.
class ViewBuffer : public std::streambuf {
 public:
  explicit ViewBuffer(std::string_view text) {
    char* begin = const_cast<char*>(text.data());
    setg(begin, begin, begin + text.size());
  }
};

}  // namespace

// The tree: nodes in one array, the children of each collection contiguous in another (a map's
// as key, value, key, value), scalars and unusual tags in one string.
class Document {
 public:
  enum class Kind : uint8_t { kNull, kScalar, kSequence, kMap };
  enum class TagKind : uint8_t { kEmpty, kPlain, kQuoted, kText };
  struct Node {
    int32_t line = -1;
    int32_t column = -1;
    Kind kind = Kind::kNull;
    TagKind tag_kind = TagKind::kEmpty;
    bool partial = false;
    uint32_t tag_begin = 0;
    uint32_t tag_size = 0;
    uint32_t text_begin = 0;      // scalar: in pool
    uint32_t text_size = 0;       //
    uint32_t children_begin = 0;  // collection: in children
    uint32_t children_built = 0;  //
    uint32_t size = 0;            // collection: items, or pairs of a map, in the file
  };

  std::vector<Node> nodes;
  std::vector<uint32_t> children;
  std::string pool;

  static DocNode Handle(std::shared_ptr<const Document> document, uint32_t index) {
    return DocNode(std::move(document), index);
  }
  static const Node& Of(const DocNode& node) { return node.document_->nodes[node.index_]; }
  static const Document& DocumentOf(const DocNode& node) { return *node.document_; }
  static const std::shared_ptr<const Document>& Shared(const DocNode& node) {
    return node.document_;
  }

  uint32_t Append(std::string_view text) {
    if (pool.size() + text.size() > std::numeric_limits<uint32_t>::max()) {
      throw LimitHit{LimitHit::What::kSize, YAML::Mark::null_mark()};
    }
    const auto begin = static_cast<uint32_t>(pool.size());
    pool.append(text);
    return begin;
  }

  uint32_t NewNode(const YAML::Mark& mark, Kind kind, const std::string& tag,
                   const std::string* scalar) {
    Node node;
    node.line = mark.line;
    node.column = mark.column;
    node.kind = kind;
    if (tag == "?") {
      node.tag_kind = TagKind::kPlain;
    } else if (tag == "!") {
      node.tag_kind = TagKind::kQuoted;
    } else if (!tag.empty()) {
      node.tag_kind = TagKind::kText;
      node.tag_begin = Append(tag);
      node.tag_size = static_cast<uint32_t>(tag.size());
    }
    if (scalar != nullptr) {
      node.text_begin = Append(*scalar);
      node.text_size = static_cast<uint32_t>(scalar->size());
    }
    nodes.push_back(node);
    return static_cast<uint32_t>(nodes.size() - 1);
  }
};

// ---- DocNode ----------------------------------------------------------------------------------

bool DocNode::IsNull() const {
  return IsDefined() && Document::Of(*this).kind == Document::Kind::kNull;
}
bool DocNode::IsScalar() const {
  return IsDefined() && Document::Of(*this).kind == Document::Kind::kScalar;
}
bool DocNode::IsSequence() const {
  return IsDefined() && Document::Of(*this).kind == Document::Kind::kSequence;
}
bool DocNode::IsMap() const {
  return IsDefined() && Document::Of(*this).kind == Document::Kind::kMap;
}
bool DocNode::partial() const { return IsDefined() && Document::Of(*this).partial; }

size_t DocNode::size() const {
  if (!IsSequence() && !IsMap()) return 0;
  return Document::Of(*this).size;
}

YAML::Mark DocNode::Mark() const {
  if (!IsDefined() || Document::Of(*this).line < 0) return YAML::Mark::null_mark();
  YAML::Mark mark;
  mark.line = Document::Of(*this).line;
  mark.column = Document::Of(*this).column;
  return mark;
}

std::string DocNode::Scalar() const {
  if (!IsScalar()) return "";
  const Document::Node& node = Document::Of(*this);
  return Document::DocumentOf(*this).pool.substr(node.text_begin, node.text_size);
}

std::string DocNode::Tag() const {
  if (!IsDefined()) return "";
  const Document::Node& node = Document::Of(*this);
  switch (node.tag_kind) {
    case Document::TagKind::kEmpty:
      return "";
    case Document::TagKind::kPlain:
      return "?";
    case Document::TagKind::kQuoted:
      return "!";
    case Document::TagKind::kText:
      break;
  }
  return Document::DocumentOf(*this).pool.substr(node.tag_begin, node.tag_size);
}

DocNode DocNode::operator[](size_t i) const {
  if (!IsSequence() || i >= Document::Of(*this).children_built) return DocNode();
  const Document& document = Document::DocumentOf(*this);
  return Document::Handle(document_, document.children[Document::Of(*this).children_begin + i]);
}

DocNode::MapIterator DocNode::begin() const { return MapIterator(*this, 0); }
DocNode::MapIterator DocNode::end() const {
  return MapIterator(*this, IsMap() ? Document::Of(*this).children_built / 2 : 0);
}

DocNode::MapIterator::MapIterator(const DocNode& map, size_t position)
    : map_(map), position_(position) {
  if (map_.IsMap() && position_ < Document::Of(map_).children_built / 2) {
    const Document& document = Document::DocumentOf(map_);
    const uint32_t* pair = &document.children[Document::Of(map_).children_begin + 2 * position_];
    const auto& shared = Document::Shared(map_);
    pair_ = {Document::Handle(shared, pair[0]), Document::Handle(shared, pair[1])};
  }
}

DocNode::MapIterator& DocNode::MapIterator::operator++() {
  *this = MapIterator(map_, position_ + 1);
  return *this;
}

namespace {

// ---- Pass 1: the top-level entries, their anchors and aliases, without building anything. ----

class EntryScanner : public YAML::EventHandler {
 public:
  EntryScanner(const std::vector<std::string_view>& read_keys, size_t max_block_values)
      : read_keys_(read_keys), max_block_values_(max_block_values) {}

  std::vector<YAML::Mark> documents;
  // Top-level entries of a map root: the first read_keys.size() + 1 whose key is read, and each
  // entry's uses of anchors (entry, anchor), in entry order, without repeats per entry.
  std::vector<uint32_t> read_entries;
  std::vector<std::pair<uint32_t, YAML::anchor_t>> uses;
  std::vector<uint32_t> anchor_owner;  // the entry an anchor is defined in, or kNone
  uint32_t entries = 0;

  void OnDocumentStart(const YAML::Mark& mark) override {
    documents.push_back(mark);
    depth_ = 0;
    flow_depth_ = 0;
    open_.clear();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Node(mark, anchor, nullptr, YAML::NullAnchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Node(mark, YAML::NullAnchor, nullptr, anchor);
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    Node(mark, anchor, &value, YAML::NullAnchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    Node(mark, anchor, nullptr, YAML::NullAnchor);
    Open(/*map=*/false, style);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    if (depth_ == 0 && documents.size() == 1) map_root_ = true;
    Node(mark, anchor, nullptr, YAML::NullAnchor);
    Open(/*map=*/true, style);
  }
  void OnMapEnd() override { Close(); }

 private:
  bool IsReadKey(std::string_view name) const {
    return std::find(read_keys_.begin(), read_keys_.end(), name) != read_keys_.end();
  }

  // The collections open: whether each is in flow style, and whether a block map expects a key.
  struct OpenCollection {
    bool flow = false;
    bool block_map = false;
    bool expecting_key = true;
  };
  void Open(bool map, YAML::EmitterStyle::value style) {
    ++depth_;
    const bool flow = style == YAML::EmitterStyle::Flow;
    if (flow) ++flow_depth_;
    open_.push_back({flow, map && !flow, true});
  }
  void Close() {
    --depth_;
    if (open_.back().flow) --flow_depth_;
    open_.pop_back();
  }

  void Node(const YAML::Mark& mark, YAML::anchor_t anchor, const std::string* scalar,
            YAML::anchor_t alias) {
    // yaml-cpp numbers anchors from 1 in each document and keeps every name.
    if (anchor != YAML::NullAnchor && anchor > static_cast<YAML::anchor_t>(kMaxAnchors)) {
      throw LimitHit{LimitHit::What::kAnchors, mark};
    }
    // A value in block style: not a key of a block map, not inside a flow collection.
    bool block_key = false;
    if (!open_.empty() && open_.back().block_map) {
      block_key = open_.back().expecting_key;
      open_.back().expecting_key = !open_.back().expecting_key;
    }
    if (flow_depth_ == 0 && !block_key && ++block_values_ > max_block_values_) {
      throw LimitHit{LimitHit::What::kBlockValues, mark};
    }
    if (documents.size() != 1) return;
    const bool in_entry = map_root_ && depth_ >= 1;
    if (map_root_ && depth_ == 1) {
      if (expecting_key_) {
        const bool read = (scalar != nullptr && IsReadKey(*scalar)) ||
                          (alias != YAML::NullAnchor && alias < anchor_is_read_key_.size() &&
                           anchor_is_read_key_[alias]);
        if (read && read_entries.size() <= read_keys_.size()) read_entries.push_back(entries);
        ++entries;
      }
      expecting_key_ = !expecting_key_;
    }
    const uint32_t entry = entries - 1;
    if (anchor != YAML::NullAnchor) {
      if (anchor_owner.size() <= anchor) {
        anchor_owner.resize(anchor + 1, kNone);
        anchor_is_read_key_.resize(anchor + 1, false);
        last_user_.resize(anchor + 1, kNone);
      }
      anchor_owner[anchor] = in_entry ? entry : kNone;
      anchor_is_read_key_[anchor] = scalar != nullptr && IsReadKey(*scalar);
    }
    if (alias != YAML::NullAnchor && in_entry && alias < last_user_.size() &&
        last_user_[alias] != entry) {
      last_user_[alias] = entry;
      uses.emplace_back(entry, alias);
    }
  }

  const std::vector<std::string_view>& read_keys_;
  const size_t max_block_values_;
  size_t block_values_ = 0;
  std::vector<OpenCollection> open_;
  int flow_depth_ = 0;
  int depth_ = 0;
  bool map_root_ = false;
  bool expecting_key_ = true;
  std::vector<bool> anchor_is_read_key_;
  std::vector<uint32_t> last_user_;
};

// The entries to build: those nmesh reads, and every entry they refer to by alias, transitively.
std::vector<bool> EntriesToKeep(const EntryScanner& scanner) {
  std::vector<bool> keep(scanner.entries, false);
  std::vector<uint32_t> pending;
  for (uint32_t entry : scanner.read_entries) {
    keep[entry] = true;
    pending.push_back(entry);
  }
  while (!pending.empty()) {
    const uint32_t entry = pending.back();
    pending.pop_back();
    auto it = std::lower_bound(scanner.uses.begin(), scanner.uses.end(),
                               std::pair<uint32_t, YAML::anchor_t>(entry, 0));
    for (; it != scanner.uses.end() && it->first == entry; ++it) {
      const uint32_t owner =
          it->second < scanner.anchor_owner.size() ? scanner.anchor_owner[it->second] : kNone;
      if (owner != kNone && !keep[owner]) {
        keep[owner] = true;
        pending.push_back(owner);
      }
    }
  }
  return keep;
}

// ---- Pass 2: the tree of the kept entries. ------------------------------------------------------

class Builder : public YAML::EventHandler {
 public:
  Builder(Document& document, const std::vector<bool>& keep) : document_(document), keep_(keep) {}

  uint32_t root() const { return root_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Begin(mark, anchor, Document::Kind::kNull, "", nullptr);
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t anchor) override {
    const Placement place = Place();
    if (!place.kept) return;
    const uint32_t target = anchor < anchors_.size() ? anchors_[anchor] : kNone;
    Attach(place, target);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Begin(mark, anchor, Document::Kind::kScalar, tag, &value);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Begin(mark, anchor, Document::Kind::kSequence, tag, nullptr);
  }
  void OnSequenceEnd() override { End(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Begin(mark, anchor, Document::Kind::kMap, tag, nullptr);
  }
  void OnMapEnd() override { End(); }

 private:
  struct Frame {
    uint32_t node = kNone;  // kNone: not built
    bool kept = true;       // inside an entry that is kept
    bool root_map = false;
    bool partial = false;
    uint32_t seen = 0;  // children in the file
    std::vector<uint32_t> children;
  };
  struct Placement {
    Frame* parent = nullptr;
    bool kept = true;
    bool unbounded = false;  // the root and its entries are built whatever the budget
  };

  Placement Place() {
    Placement place;
    if (frames_.empty()) {
      place.unbounded = true;
      return place;
    }
    Frame& parent = frames_.back();
    place.parent = &parent;
    if (parent.root_map) {
      const uint32_t entry = parent.seen / 2;
      place.kept = entry < keep_.size() && keep_[entry];
      place.unbounded = true;
    } else {
      place.kept = parent.kept;
    }
    ++parent.seen;
    return place;
  }

  // Adds `index` (kNone: not built) to the parent when it has room; a parent that misses a child
  // is partial from there on.
  bool Attach(const Placement& place, uint32_t index) {
    Frame* parent = place.parent;
    if (parent == nullptr) {
      root_ = index;
      return true;
    }
    if (parent->node == kNone) return false;
    const bool room = place.unbounded || built_ < kMaxBuiltNodes;
    if (index == kNone || parent->partial || !room) {
      parent->partial = true;
      return false;
    }
    parent->children.push_back(index);
    if (!place.unbounded) ++built_;
    return true;
  }

  void Begin(const YAML::Mark& mark, YAML::anchor_t anchor, Document::Kind kind,
             const std::string& tag, const std::string* scalar) {
    const Placement place = Place();
    const bool collection = kind == Document::Kind::kSequence || kind == Document::Kind::kMap;
    uint32_t index = kNone;
    if (place.kept) {
      // Built when its parent takes it; an anchored node is built in any case (a stub whose
      // children are not, past the budget), for the aliases that name it.
      const bool wanted =
          place.parent == nullptr || (place.parent->node != kNone && !place.parent->partial &&
                                      (place.unbounded || built_ < kMaxBuiltNodes));
      if (wanted || anchor != YAML::NullAnchor) {
        index = document_.NewNode(mark, kind, tag, scalar);
      }
      if (!wanted && index != kNone) ++built_;
      Attach(place, index);
      if (anchor != YAML::NullAnchor) {
        if (anchors_.size() <= anchor) anchors_.resize(anchor + 1, kNone);
        anchors_[anchor] = index;
      }
    }
    if (collection) {
      Frame frame;
      frame.node = index;
      frame.kept = place.kept;
      frame.root_map = place.parent == nullptr && kind == Document::Kind::kMap;
      frames_.push_back(std::move(frame));
    }
  }

  void End() {
    Frame frame = std::move(frames_.back());
    frames_.pop_back();
    if (frame.node == kNone) return;
    Document::Node& node = document_.nodes[frame.node];
    const bool map = node.kind == Document::Kind::kMap;
    // Dropped top-level entries are absent from the root, as if not written.
    const uint32_t seen =
        frame.root_map ? static_cast<uint32_t>(frame.children.size()) : frame.seen;
    node.size = map ? seen / 2 : seen;
    node.partial = frame.partial;
    node.children_begin = static_cast<uint32_t>(document_.children.size());
    node.children_built = static_cast<uint32_t>(frame.children.size());
    document_.children.insert(document_.children.end(), frame.children.begin(),
                              frame.children.end());
  }

  Document& document_;
  const std::vector<bool>& keep_;
  std::vector<Frame> frames_;
  std::vector<uint32_t> anchors_;
  int64_t built_ = 0;
  uint32_t root_ = kNone;
};

}  // namespace

absl::StatusOr<DocNode> LoadDocument(std::string_view text, std::string_view file,
                                     const std::vector<std::string_view>& read_keys) {
  if (text.size() > kMaxTextBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe '%s' is %d bytes, more than the %d nmesh parses", file, text.size(),
                        kMaxTextBytes));
  }
  EntryScanner scanner(read_keys, text.size() / kBytesPerBlockValue + kFreeBlockValues);
  try {
    ViewBuffer buffer(text);
    std::istream in(&buffer);
    YAML::Parser parser(in);
    if (parser.HandleNextDocument(scanner) && parser.HandleNextDocument(scanner)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "recipe has more than one YAML document: a second one starts at %s; a recipe is a "
          "single document",
          FormatMark(file, scanner.documents.back())));
    }
  } catch (const LimitHit& limit) {
    if (limit.what == LimitHit::What::kBlockValues) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "recipe '%s' has more than %d values in block style, more than nmesh reads from %d "
          "bytes (one per %d bytes, and %d more) (%s)",
          file, text.size() / kBytesPerBlockValue + kFreeBlockValues, text.size(),
          kBytesPerBlockValue, kFreeBlockValues, FormatMark(file, limit.mark)));
    }
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe '%s' has more than %d anchors (&name), more than nmesh reads (%s)",
                        file, kMaxAnchors, FormatMark(file, limit.mark)));
  }
  auto document = std::make_shared<Document>();
  uint32_t root = kNone;
  try {
    const std::vector<bool> keep = EntriesToKeep(scanner);
    Builder builder(*document, keep);
    ViewBuffer buffer(text);
    std::istream in(&buffer);
    YAML::Parser parser(in);
    parser.HandleNextDocument(builder);
    root = builder.root();
  } catch (const LimitHit&) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recipe '%s' is too large: its values exceed 4 GiB", file));
  }
  if (root == kNone) {
    // An empty document is null, as YAML::Load gives it.
    root = document->NewNode(YAML::Mark::null_mark(), Document::Kind::kNull, "", nullptr);
  }
  document->nodes.shrink_to_fit();
  return Document::Handle(std::move(document), root);
}

}  // namespace nmesh::config::internal

#include "nmesh/config/recipe.h"

#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/config/internal/recipe_file.h"
#include "nmesh/config/internal/recipe_text.h"
#include "nmesh/config/internal/section_parser.h"
#include "nmesh/config/internal/separate_meshes.h"
#include "nmesh/config/internal/yaml_value.h"
#include "nmesh/validate/error_fields.h"
#include "yaml-cpp/yaml.h"

namespace nmesh::config {

std::string_view SectionName(Section section) { return NameOf<Section>(kSectionNames, section); }

absl::StatusOr<Section> ParseSection(std::string_view name) {
  if (std::optional<Section> section = ValueNamed<Section>(kSectionNames, name)) return *section;
  return absl::InvalidArgumentError(absl::StrFormat(
      "Unknown recipe section: %s. Valid sections: ['distributed', 'teacher_distributed']", name));
}

std::optional<absl::Duration> DistEnv::Timeout() const {
  if (!timeout_minutes.has_value()) return std::nullopt;
  return absl::Seconds(*timeout_minutes * 60.0);
}

std::optional<SourcePosition> Recipe::PositionOf(std::string_view key) const {
  if (auto it = positions.find(key); it != positions.end()) return it->second;
  const std::string relative = absl::StrFormat("%s.%s", SectionName(section), key);
  if (auto it = positions.find(relative); it != positions.end()) return it->second;
  return std::nullopt;
}

std::string Recipe::Where(std::string_view key) const {
  const std::optional<SourcePosition> position = PositionOf(key);
  if (!position.has_value()) return "";
  return internal::FormatWhere(filename, {position->line, position->column});
}

absl::Status Recipe::Annotate(const absl::Status& status, std::string_view key) const {
  const std::string where = Where(key);
  if (status.ok() || where.empty()) return status;
  absl::Status annotated(status.code(), absl::StrFormat("%s (%s)", status.message(), where));
  status.ForEachPayload([&annotated](absl::string_view url, const absl::Cord& payload) {
    annotated.SetPayload(url, payload);
  });
  return validate::MarkAnnotated(std::move(annotated));
}

absl::Status Recipe::AnnotateSizeError(const absl::Status& status) const {
  if (status.ok() || validate::IsAnnotated(status)) return status;
  for (const std::string& field : validate::FieldsOf(status).named) {
    if (PositionOf(field).has_value()) return Annotate(status, field);
  }
  return Annotate(status, SectionName(section));
}

absl::StatusOr<Recipe> ParseRecipe(std::string_view yaml_text, std::string_view filename,
                                   Section section, const RecipeOverrides& overrides) {
  // yaml-cpp reports errors by throwing, also from node accessors; nothing may escape.
  try {
    NMESH_RETURN_IF_ERROR(internal::CheckRecipeText(yaml_text, filename));
    internal::SectionParser parser(filename, section, overrides);
    absl::StatusOr<Recipe> recipe = parser.Parse(yaml_text);
    if (!recipe.ok() || !recipe->separate_meshes) return recipe;
    return internal::ParseSeparateMeshes(yaml_text, filename, section, overrides);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid YAML in recipe: %s (%s)", internal::Printable(e.msg),
                        internal::FormatWhere(filename, internal::ToPosition(e.mark))));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrFormat("unexpected error reading recipe '%s': %s", filename, e.what()));
  }
}

absl::StatusOr<Recipe> LoadRecipeFile(const std::string& path, Section section,
                                      const RecipeOverrides& overrides) {
  NMESH_ASSIGN_OR_RETURN(std::string text, internal::ReadRecipeText(path));
  return ParseRecipe(text, path, section, overrides);
}

}  // namespace nmesh::config

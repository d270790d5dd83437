// Suggestions for misspelt names: "learning_rat" → "learning_rate".
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pdsd {

// Levenshtein distance between two ASCII strings.
size_t edit_distance(std::string_view a, std::string_view b);

// The closest candidate, if it is close enough to be a plausible typo (distance at most a third of
// the word, at least 1; or one name contains the other).
std::optional<std::string> did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace pdsd

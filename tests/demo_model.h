#pragma once
// Where the bundled demo model (models/jetmoe-kjv-tiny) is, for tests.
#include <string>

namespace jetmoe::testing {

inline const std::string kDemo = std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny";

}  // namespace jetmoe::testing

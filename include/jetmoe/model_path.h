#pragma once
#include <string>

namespace jetmoe {

// What a user passes as a model: an existing folder or file is used as it
// is; otherwise a Hugging Face repo id ("jetmoe/jetmoe-8b", optionally
// "@revision") is looked up in the local Hugging Face cache, never
// downloaded: $HF_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; inside it
// models--owner--name/refs/<revision or main> names the snapshot to use.
// Throws Error saying where it looked.
std::string resolve_model_path(const std::string& spec);

// The Hugging Face hub cache folder the rules above pick.
std::string hf_hub_cache_dir();

}  // namespace jetmoe

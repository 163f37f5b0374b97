// The C++ counterpart of transformers'
//   pipe = pipeline("text-generation", model=MODEL_DIR)
//   print(pipe(PROMPT, max_new_tokens=40)[0]["generated_text"])
// with the text streamed as it is produced.
#include <iostream>

#include "jetmoe/error.h"
#include "jetmoe/pipeline.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: text_generation MODEL_DIR PROMPT\n";
    return 2;
  }
  try {
    const auto pipe = jetmoe::TextGenerationPipeline::from_pretrained(argv[1]);
    jetmoe::GenerationConfig config = pipe.generation_config();
    config.max_new_tokens = 40;
    std::cout << argv[2] << std::flush;
    pipe(argv[2], config, {}, [](std::string_view piece) { std::cout << piece << std::flush; });
    std::cout << "\n";
  } catch (const jetmoe::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

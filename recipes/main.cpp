// The hone CLI: parses arguments with CLI11 and dispatches to the drivers in recipes/.
// The only place an Error becomes an exit code.
#include <CLI/CLI.hpp>
#include <iostream>

#include "autograd/error.h"

int main(int argc, char** argv) {
  CLI::App app{"hone: LoRA fine-tuning of Llama-family models on CPUs"};
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const hone::Error& e) {
    std::cerr << "hone: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

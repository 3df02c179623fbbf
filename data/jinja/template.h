// A parsed Jinja template and its renderer: the subset of jinja2 that Hugging Face chat templates
// use, with transformers' environment (trim_blocks, lstrip_blocks, no autoescape, its tojson).
//
//   hone::jinja::Template t("{{ greeting | upper }}");
//   t.render(nlohmann::ordered_json{{"greeting", "hi"}});  // "HI"
//
// Errors (syntax, unknown filters, raise_exception, type errors) are hone::Error with
// "<name>:line:column: message".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/jinja/syntax.h"
#include "data/jinja/value.h"

namespace hone::jinja {

class Template {
 public:
  explicit Template(const std::string& source, Options opts = {}, std::string name = "template");

  // vars: the template's variables, on top of the globals namespace(), range(), dict(),
  // raise_exception() and strftime_now().
  std::string render(const Map& vars) const;
  std::string render(const nlohmann::ordered_json& vars) const;  // an object

 private:
  std::string name_;
  std::vector<NodePtr> body_;
};

// Parses and renders in one step.
std::string render(const std::string& source, const nlohmann::ordered_json& vars,
                   Options opts = {});

}  // namespace hone::jinja

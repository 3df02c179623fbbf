// The Jinja interpreter behind chat templates, case by case against jinja2's semantics under
// transformers' environment (trim_blocks, lstrip_blocks, its tojson).
#include <gtest/gtest.h>

#include <string>

#include "autograd/error.h"
#include "data/jinja/template.h"

namespace hone::jinja {
namespace {

using ojson = nlohmann::ordered_json;

std::string R(const std::string& src, const ojson& vars = ojson::object(), Options opts = {}) {
  return render(src, vars, opts);
}

// The hone::Error message of rendering src, or "" when it renders.
std::string error_of(const std::string& src, const ojson& vars = ojson::object()) {
  try {
    R(src, vars);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Jinja, TextAndExpressions) {
  EXPECT_EQ(R("plain text"), "plain text");
  EXPECT_EQ(R("{{ 'a' + \"b\" }}{{ 1 + 2 * 3 }}{{ (1 + 2) * 3 }}"), "ab79");
  EXPECT_EQ(R("{{ x }}|{{ x.y }}", {{"x", {{"y", "deep"}}}}), "{'y': 'deep'}|deep");
  EXPECT_EQ(R("{{ 'it''s' }}{{ '\\n' == '\n' }}"),
            "its"
            "True");
  EXPECT_EQ(R("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 6 / 3 }}"),
            "3 -4 2 3.5 1024 2.0");
  EXPECT_EQ(R("{{ 'ab' * 3 }}{{ [1] + [2] }}{{ 1 ~ 'x' ~ none }}"), "ababab[1, 2]1xNone");
  EXPECT_EQ(R("{{ true }} {{ none }} {{ 1.5 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ ['a', 1, none] }}"),
            "True None 1.5 1e-05 0.30000000000000004 ['a', 1, None]");
  EXPECT_EQ(R("{{ {'k': [1, 2]}['k'][1] }}{{ [10, 20, 30][-1] }}{{ 'héllo'[1] }}"), "230é");
}

TEST(Jinja, WhitespaceControl) {
  EXPECT_EQ(R("a  {{- 'b' -}}  \n c"), "abc");
  EXPECT_EQ(R("a\n  {%- if true -%}\n  b  \n{%- endif %}"), "ab");
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(R("{% if true %}\n    yes\n    {% endif %}\nend"), "    yes\nend");
  // Neither applies to {{ }} tags.
  EXPECT_EQ(R("  {{ 'x' }}\n"), "  x");  // (the template's one trailing newline is dropped)
  EXPECT_EQ(R("{{ 'x' }}\n\n"), "x\n");
  EXPECT_EQ(R("line\n  {# note #}\nnext"), "line\nnext");
  // `+` turns lstrip_blocks off for one tag.
  EXPECT_EQ(R("  {%+ if true %}x{% endif %}"), "  x");
  // Tags not alone on their line keep the text before them.
  EXPECT_EQ(R("a  {% if true %}b{% endif %}"), "a  b");
  Options raw{false, false, true};
  EXPECT_EQ(R("{% if true %}\n    yes\n    {% endif %}\n", ojson::object(), raw),
            "\n    yes\n    \n");
  // Windows newlines are normalised as jinja2 does.
  EXPECT_EQ(R("{% if true %}\r\nx\r\n{% endif %}"), "x\n");
}

TEST(Jinja, LoopsAndLoopVariables) {
  ojson v = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(R("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ x }}{{ loop.revindex0 }}"
              "{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}/{{ loop.length }} {% "
              "endfor %}",
              v),
            "10a2F/3 21b1/3 32c0L/3 ");
  EXPECT_EQ(R("{% for x in xs %}{{ loop.previtem | default('-') }}{{ x }}{{ loop.nextitem | "
              "default('-') }} {% endfor %}",
              v),
            "-ab abc bc- ");
  EXPECT_EQ(R("{% for x in xs if x != 'b' %}{{ x }}{{ loop.index }}{% endfor %}", v), "a1c2");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(
      R("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"z", 1}, {"a", 2}}}}),
      "z=1;a=2;");
  EXPECT_EQ(R("{% for k in d %}{{ k }}{% endfor %}", {{"d", {{"z", 1}, {"a", 2}}}}), "za");
  EXPECT_EQ(R("{% for c in 'añb' %}[{{ c }}]{% endfor %}"), "[a][ñ][b]");
  EXPECT_EQ(R("{% for i in range(10) %}{% if i == 4 %}{% break %}{% endif %}{% if i is odd %}{% "
              "continue %}{% endif %}"
              "{{ i }}{% endfor %}"),
            "02");
  EXPECT_EQ(R("{% for i in range(1, 8, 3) %}{{ i }}{{ loop.cycle('a', 'b') }}{% endfor %}"),
            "1a4b7a");
  EXPECT_EQ(R("{% for m in undefined_thing %}x{% endfor %}ok"), "ok");
  // Nested loops see their own `loop`.
  EXPECT_EQ(R("{% for a in [1, 2] %}{% for b in [1, 2, 3] %}{{ loop.index }}{% endfor %}{{ "
              "loop.index }};{% endfor %}"),
            "1231;1232;");
}

TEST(Jinja, ScopingAndNamespace) {
  // `set` inside a loop body does not leak out of it; `if` makes no scope.
  EXPECT_EQ(R("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"),
            "231");
  EXPECT_EQ(R("{% if true %}{% set y = 5 %}{% endif %}{{ y }}"), "5");
  // namespace() attributes are how templates carry state out of a loop.
  EXPECT_EQ(
      R("{% set ns = namespace(n=0, seen=false) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}"
        "{% if i == 2 %}{% set ns.seen = true %}{% endif %}{% endfor %}{{ ns.n }} {{ ns.seen }}"),
      "6 True");
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(R("{% set block %}  inner {{ 1 + 1 }} {% endset %}[{{ block }}]"), "[  inner 2 ]");
  EXPECT_NE(error_of("{% set x = 1 %}{% set x.attr = 2 %}").find("non-namespace"),
            std::string::npos);
}

TEST(Jinja, Conditionals) {
  EXPECT_EQ(R("{% if x %}a{% elif y %}b{% else %}c{% endif %}", {{"x", 0}, {"y", "s"}}), "b");
  EXPECT_EQ(R("{% if x %}a{% elif y %}b{% else %}c{% endif %}", {{"x", ""}, {"y", ojson::array()}}),
            "c");
  EXPECT_EQ(R("{{ 'yes' if 1 < 2 else 'no' }}{{ 'yes' if [] else 'no' }}[{{ 'shown' if false }}]"),
            "yesno[]");
  // and/or return an operand, as in Python.
  EXPECT_EQ(R("{{ 0 or 'b' }}{{ 'a' and 'c' }}{{ '' and 'x' }}{{ none or [] }}"), "bc[]");
  EXPECT_EQ(R("{{ not 1 }}{{ not (1 and 0) }}{{ not none }}"), "FalseTrueTrue");
  EXPECT_EQ(R("{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ 1 == 1.0 }}{{ 'a' < 'b' }}{{ [1, 2] < [1, 3] }}{{ "
              "2 != 2 }}"),
            "TrueFalseTrueTrueTrueFalse");
  EXPECT_EQ(R("{{ 'ell' in 'hello' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 'z' not in 'abc' "
              "}}{{ 3 in [] }}"),
            "TrueTrueTrueTrueFalse");
}

TEST(Jinja, UndefinedBehavesLikeJinja) {
  EXPECT_EQ(R("[{{ nothing }}]{% if nothing %}x{% endif %}{{ nothing is defined }}{{ nothing is "
              "undefined }}"),
            "[]FalseTrue");
  EXPECT_EQ(R("{{ d.missing is defined }}{{ d.k is defined }}[{{ d.missing }}]{{ d['k'] }}",
              {{"d", {{"k", 1}}}}),
            "FalseTrue[]1");
  EXPECT_EQ(R("{{ nothing | length }}{{ nothing | default('dflt') }}{{ [1][5] is defined }}"),
            "0dfltFalse");
  EXPECT_NE(error_of("{{ nothing.attr }}").find("'nothing' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ nothing + 'x' }}").find("'nothing' is undefined"), std::string::npos);
}

// An index past the end is undefined, as in jinja2 3.1 and @huggingface/jinja; reading an
// attribute of it raises in jinja2 ("list object has no element 0"), which transformers uses, so
// Qwen3's template (messages[0].role) raises on an empty conversation there and here.
// @huggingface/jinja instead yields undefined again and renders nothing; hone follows transformers.
TEST(Jinja, IndexPastTheEndIsUndefinedAndReadingItRaisesAsInJinja2) {
  const ojson empty = {{"x", ojson::array()}};
  EXPECT_EQ(R("[{{ x[0] }}]{{ x[0] is defined }}{{ x[0] is undefined }}{{ x[0] or 'd' }}"
              "{{ x[0] | default('z') }}{{ x[-1] is defined }}",
              empty),
            "[]FalseTruedzFalse");
  EXPECT_EQ(R("{{ 'ab'[5] is defined }}{{ [1][-2] is defined }}"), "FalseFalse");
  EXPECT_NE(error_of("{{ x[0].role }}", empty).find("list object has no element 0"),
            std::string::npos)
      << error_of("{{ x[0].role }}", empty);
  EXPECT_NE(error_of("{% if x[-2].role == 's' %}{% endif %}", {{"x", {1}}})
                .find("list object has no element -2"),
            std::string::npos);
}

TEST(Jinja, Filters) {
  EXPECT_EQ(
      R("{{ 'abc' | length }}{{ 'añb' | length }}{{ [1, 2] | length }}{{ {'a': 1} | count }}"),
      "3321");
  EXPECT_EQ(R("[{{ '  x y \n' | trim }}][{{ 'xxaxx' | trim('x') }}]"), "[x y][a]");
  EXPECT_EQ(R("{{ 'Ab' | upper }}{{ 'Ab' | lower }}{{ 'hello world' | title }}{{ 'hELLO' | "
              "capitalize }}"),
            "ABabHello WorldHello");
  EXPECT_EQ(R("{{ 'a-b-c' | replace('-', '+') }}{{ 'a-b-c' | replace('-', '', 1) }}"), "a+b+cab-c");
  EXPECT_EQ(
      R("{{ [1, 2, 3] | join(', ') }}|{{ ['a', 'b'] | join }}|{{ ms | join('/', attribute='r') }}",
        {{"ms", {{{"r", "u"}}, {{"r", "a"}}}}}),
      "1, 2, 3|ab|u/a");
  EXPECT_EQ(R("{{ [4, 5, 6] | first }}{{ [4, 5, 6] | last }}{{ 'xyz' | first }}{{ [] | first is "
              "defined }}"),
            "46xFalse");
  EXPECT_EQ(R("{{ x | default('d') }}{{ '' | default('d') }}{{ '' | default('d', true) }}{{ 0 | "
              "d(5, boolean=true) }}"),
            "dd5");
  EXPECT_EQ(R("{% for k, v in {'b': 1, 'a': 2} | items %}{{ k }}{{ v }}{% endfor %}"
              "{% for k, v in {'b': 1, 'a': 2} | dictsort %}{{ k }}{{ v }}{% endfor %}"),
            "b1a2a2b1");
  EXPECT_EQ(R("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='c') | list }}"
              "{{ ms | rejectattr('role', 'eq', 'user') | map(attribute='c') | join }}"
              "{{ ms | selectattr('flag') | list | length }}",
              {{"ms",
                {{{"role", "user"}, {"c", "1"}},
                 {{"role", "bot"}, {"c", "2"}, {"flag", true}},
                 {{"role", "user"}, {"c", "3"}}}}}),
            "['1', '3']21");
  EXPECT_EQ(R("{{ [1, 2, 3, 4] | select('odd') | list }}{{ [1, 2, 3, 4] | reject('divisibleby', 2) "
              "| list }}"
              "{{ ['a', 'B'] | map('upper') | list }}"),
            "[1, 3][1, 3]['A', 'B']");
  EXPECT_EQ(R("{{ [3, 1, 2] | sort }}{{ [3, 1, 2] | sort(reverse=true) }}{{ [1, 2, 1, 3] | unique "
              "| list }}"
              "{{ [1, 2, 3] | reverse | list }}{{ 'abc' | reverse }}"),
            "[1, 2, 3][3, 2, 1][1, 2, 3][3, 2, 1]cba");
  EXPECT_EQ(R("{{ '42' | int + 1 }}{{ 'x' | int }}{{ 3.9 | int }}{{ '2.5' | float }}{{ -3 | abs "
              "}}{{ 2.567 | round(2) }}"
              "{{ [1, 2, 3] | sum }}{{ [4, 2, 9] | max }}{{ [4, 2, 9] | min }}"),
            "43032.532.57692");
  EXPECT_EQ(R("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}"),
            "a\n  b\n\n  c|  a\n  b");
  EXPECT_EQ(R("{{ 5 | string + '!' }}{{ '<a>' | e }}{{ '<a>' | safe }}"), "5!&lt;a&gt;<a>");
  // markupsafe's entities, as jinja2 writes them.
  EXPECT_EQ(R("{{ s | escape }}", {{"s", "&<>\"'x"}}), "&amp;&lt;&gt;&#34;&#39;x");
  EXPECT_EQ(R("{% filter upper %}shout {{ 'this' }}{% endfilter %}"), "SHOUT THIS");
  EXPECT_NE(error_of("{{ 1 | frobnicate }}").find("no filter named 'frobnicate'"),
            std::string::npos);
}

TEST(Jinja, ToJsonMatchesTransformers) {
  // json.dumps(ensure_ascii=False) with default separators; insertion order kept.
  ojson v = ojson::parse(
      R"({"t": {"name": "f", "b": [1, 2.0, true, null], "s": "é \"q\" \n\\ 🦙", "e": {}, "l": []}})");
  EXPECT_EQ(
      R("{{ t | tojson }}", v),
      R"({"name": "f", "b": [1, 2.0, true, null], "s": "é \"q\" \n\\ 🦙", "e": {}, "l": []})");
  EXPECT_EQ(R("{{ {'a': [1, {'b': 2}]} | tojson(indent=2) }}"),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": 2\n    }\n  ]\n}");
  EXPECT_EQ(R("{{ '\x01' | tojson }}"), "\"\\u0001\"");
}

TEST(Jinja, Tests) {
  EXPECT_EQ(
      R("{{ 'a' is string }}{{ 1 is string }}{{ 1 is number }}{{ 1.5 is number }}{{ 1 is integer }}"
        "{{ 1.5 is float }}{{ {} is mapping }}{{ [] is mapping }}{{ [] is iterable }}{{ 'x' is "
        "iterable }}"
        "{{ 1 is iterable }}{{ none is none }}{{ 0 is none }}"),
      "TrueFalseTrueTrueTrueTrueTrueFalseTrueTrueFalseTrueFalse");
  EXPECT_EQ(R("{{ x is false }}{{ x is true }}{{ x is boolean }}{{ 0 is false }}", {{"x", false}}),
            "TrueFalseTrueFalse");
  EXPECT_EQ(R("{{ 6 is divisibleby 3 }}{{ 7 is divisibleby(3) }}{{ 3 is odd }}{{ 3 is even }}{{ 2 "
              "is in [1, 2] }}"
              "{{ 'a' is eq 'a' }}{{ x is not none }}{{ x is not defined }}",
              {{"x", 1}}),
            "TrueFalseTrueFalseTrueTrueTrueFalse");
  EXPECT_EQ(R("{{ f is callable }}{{ 'ABC' is upper }}{{ 'abc' is lower }}", {}), "FalseTrueTrue");
  EXPECT_NE(error_of("{{ 1 is shiny }}").find("no test named 'shiny'"), std::string::npos);
}

TEST(Jinja, StringMethods) {
  EXPECT_EQ(R("{{ s.startswith('<tool') }}{{ s.endswith('>') }}{{ s.startswith(('x', '<')) }}{{ "
              "s.endswith('z') }}",
              {{"s", "<tool_response>"}}),
            "TrueTrueTrueFalse");
  EXPECT_EQ(R("{{ 'a</think>b</think>c'.split('</think>') }}{{ 'a,b,c'.split(',', 1) }}{{ '  a  b "
              "\n'.split() }}"
              "{{ 'a b c'.split(none, 1) }}"),
            "['a', 'b', 'c']['a', 'b,c']['a', 'b']['a', 'b c']");
  EXPECT_EQ(R("[{{ '\n\nx\n'.strip('\n') }}][{{ '\n x '.lstrip() }}][{{ 'x\n\n'.rstrip('\n') "
              "}}][{{ 'abcxcba'.strip('ab') }}]"
              "[{{ '\u3000x\u00a0'.strip() }}][{{ 'ééxé'.lstrip('é') }}]"),
            "[x][x ][x][cxc][x][xé]");
  EXPECT_EQ(R("{{ 'Hello'.upper() }}{{ 'Hello'.lower() }}{{ 'a.b'.replace('.', '::') }}{{ ', "
              "'.join(['x', 'y']) }}"
              "{{ 'banana'.find('n') }}{{ 'banana'.count('a') }}{{ 'hello world'.title() }}"),
            "HELLOhelloa::bx, y23Hello World");
  EXPECT_EQ(R("{{ d.get('a') }}{{ d.get('z', 'dflt') }}{{ d.get('z') }}{{ d.keys() | list }}{{ "
              "d.values() | list }}",
              {{"d", {{"a", 1}, {"b", 2}}}}),
            "1dfltNone['a', 'b'][1, 2]");
}

TEST(Jinja, Slicing) {
  ojson v = {{"xs", {0, 1, 2, 3, 4, 5}}};
  EXPECT_EQ(R("{{ xs[::-1] }}{{ xs[1:3] }}{{ xs[:-2] }}{{ xs[-2:] }}{{ xs[::2] }}{{ xs[5:1:-2] "
              "}}{{ xs[10:] }}"
              "{{ xs[-100:2] }}{{ xs[:] }}",
              v),
            "[5, 4, 3, 2, 1, 0][1, 2][0, 1, 2, 3][4, 5][0, 2, 4][5, 3][][0, 1][0, 1, 2, 3, 4, 5]");
  EXPECT_EQ(R("{{ 'hello'[1:4] }}{{ 'hello'[::-1] }}{{ '日本語'[1:] }}{{ '日本語'[::-1] }}{{ "
              "'abc'[-1] }}"),
            "ellolleh本語語本日c");
  EXPECT_EQ(R("{% for m in xs[::-1] %}{{ loop.index0 }}{{ m }}{% endfor %}", {{"xs", {"a", "b"}}}),
            "0b1a");
  EXPECT_NE(error_of("{{ [1][::0] }}").find("slice step cannot be zero"), std::string::npos);
}

TEST(Jinja, MacrosRawAndComments) {
  EXPECT_EQ(R("{% macro tag(name, cls='x') %}<{{ name }} {{ cls }}>{% endmacro %}{{ tag('a') }}{{ "
              "tag('b', cls='y') }}"
              "{{ tag(name='c') }}"),
            "<a x><b y><c x>");
  EXPECT_EQ(R("{% raw %}{{ not rendered }}{% endraw %}"), "{{ not rendered }}");
  EXPECT_EQ(R("a{# a comment {{ with tags }} #}b"), "ab");
  EXPECT_EQ(R("{% generation %}kept{% endgeneration %}"), "kept");
}

TEST(Jinja, GlobalsAndCallables) {
  EXPECT_EQ(R("{{ range(3) | list }}{{ dict(a=1) }}"), "[0, 1, 2]{'a': 1}");
  // Tuples print as Python's; items() and dictsort give tuples.
  EXPECT_EQ(
      R("{{ (1, 2) }}{{ () }}{{ (1,) }}{{ {'b': 1} | dictsort }}{{ {'a': 1}.items() | list }}"),
      "(1, 2)()(1,)[('b', 1)][('a', 1)]");
  EXPECT_EQ(R("{{ strftime_now('%Y') | length }}"), "4");
}

TEST(Jinja, SyntaxErrorsSayLineAndColumn) {
  EXPECT_EQ(error_of("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}"),
            "template:3:10: unexpected '}}'");
  EXPECT_EQ(error_of("{% for x in y %}no end"),
            "template:1:23: unexpected end of template; expected 'else' or 'endfor'");
  EXPECT_EQ(error_of("ab\n {% frob %}"), "template:2:5: unknown tag 'frob'");
  EXPECT_EQ(error_of("{{ 'unterminated }}"), "template:1:4: unterminated string literal");
  EXPECT_EQ(error_of("{# never closed"), "template:1:1: unclosed comment");
  EXPECT_EQ(error_of("{{ x"), "template:1:5: unexpected end of template, expected '}}'");
  EXPECT_EQ(error_of("{{ a b }}"), "template:1:6: expected '}}' but found 'b'");
}

TEST(Jinja, RuntimeErrorsSayLineAndColumn) {
  EXPECT_EQ(error_of("ok\n{% if true %}{{ raise_exception('Roles must alternate') }}{% endif %}"),
            "template:2:17: raise_exception: Roles must alternate");
  EXPECT_EQ(error_of("{{ 1 + 'a' }}"),
            "template:1:6: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(error_of("{{ 1 / 0 }}"), "template:1:6: division by zero");
  EXPECT_EQ(error_of("{{ 5 in 7 }}"), "template:1:6: argument of type 'int' is not iterable");
  // The template name given by the caller appears in messages.
  try {
    Template t("{{ raise_exception('no') }}", Options{}, "chat_template");
    t.render(ojson::object());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "chat_template:1:4: raise_exception: no");
  }
}

// Each shape below, 100,000 levels deep, overflowed the stack in the parser, the evaluator or the
// tree's destructor; the parsed tree's height is bounded instead.
std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

constexpr int kDeep = 100000;
const std::string kTooDeep = "template nested too deeply (more than 256 levels)";

// The message of a template that must be refused as too deeply nested (it starts with the
// template's name and position).
void expect_too_deep(const std::string& src) {
  std::string err = error_of(src);
  EXPECT_EQ(err.rfind("template:", 0), 0u) << err.substr(0, 200);
  EXPECT_NE(err.find(kTooDeep), std::string::npos) << err.substr(0, 200);
}

TEST(JinjaDepth, NestedBracketsAreRefusedNotAStackOverflow) {
  expect_too_deep("{{ " + repeat("(", kDeep) + "1" + repeat(")", kDeep) + " }}");
  expect_too_deep("{{ " + repeat("[", kDeep) + repeat("]", kDeep) + " }}");
  expect_too_deep("{{ " + repeat("{'a': ", kDeep) + "1" + repeat("}", kDeep) + " }}");
  expect_too_deep("{{ " + repeat("f(", kDeep) + repeat(")", kDeep) + " }}");
  expect_too_deep("{{ x[" + repeat("x[", kDeep) + "0" + repeat("]", kDeep) + "] }}");
  expect_too_deep("{{ " + repeat("not ", kDeep) + "x }}");
  expect_too_deep("{{ " + repeat("- ", kDeep) + "1 }}");
  expect_too_deep("{{ " + repeat("1 if x else ", kDeep) + "2 }}");
}

TEST(JinjaDepth, FlatChainsAreRefusedNotAStackOverflow) {
  // The parser builds these in a loop, but each link is one more level of the tree that the
  // evaluator and the destructor recurse into.
  expect_too_deep("{{ 1" + repeat(" + 1", kDeep) + " }}");
  expect_too_deep("{{ 'a'" + repeat(" ~ 'a'", kDeep) + " }}");
  expect_too_deep("{{ 2" + repeat(" * 1", kDeep) + " }}");
  expect_too_deep("{{ x" + repeat(" or x", kDeep) + " }}");
  expect_too_deep("{{ x" + repeat(" and x", kDeep) + " }}");
  expect_too_deep("{{ x" + repeat(" | trim", kDeep) + " }}");
  expect_too_deep("{{ x" + repeat(" | default('y')", kDeep) + " }}");
  expect_too_deep("{{ x" + repeat(" is defined", kDeep) + " }}");
  expect_too_deep("{{ a" + repeat(".b", kDeep) + " }}");
  expect_too_deep("{{ a" + repeat(".b.0", kDeep) + " }}");
  expect_too_deep("{{ x" + repeat("[0]", kDeep) + " }}");
  expect_too_deep("{{ x" + repeat("[1:]", kDeep) + " }}");
  expect_too_deep("{{ f" + repeat("()", kDeep) + " }}");
}

TEST(JinjaDepth, NestedBlocksAreRefusedNotAStackOverflow) {
  expect_too_deep(repeat("{% if true %}", kDeep) + "x" + repeat("{% endif %}", kDeep));
  expect_too_deep(repeat("{% for i in [1] %}", kDeep) + "x" + repeat("{% endfor %}", kDeep));
  expect_too_deep(repeat("{% filter upper %}", kDeep) + "x" + repeat("{% endfilter %}", kDeep));
  expect_too_deep("{% if x %}" + repeat("{% elif x %}", kDeep) + "{% endif %}");
  expect_too_deep(repeat("{% if true %}", kDeep));  // never closed
}

TEST(JinjaDepth, NestingUpToTheLimitAndLongFlatTemplatesRender) {
  EXPECT_EQ(R("{{ " + repeat("(", 200) + "7" + repeat(")", 200) + " }}"), "7");
  EXPECT_EQ(R("{{ " + repeat("[", 200) + repeat("]", 200) + " | length }}"), "1");
  EXPECT_EQ(R("{{ 0" + repeat(" + 1", 200) + " }}"), "200");
  EXPECT_EQ(R(repeat("{% if true %}", 200) + "x" + repeat("{% endif %}", 200)), "x");
  // Width is not depth: long lists, argument lists, comparisons and bodies are flat.
  EXPECT_EQ(R("{{ [" + repeat("1, ", kDeep) + "1] | length }}"), std::to_string(kDeep + 1));
  EXPECT_EQ(R("{{ 1" + repeat(" < 2", 1000) + " }}"), "False");
  EXPECT_EQ(R(repeat("{{ 'x' }}", kDeep)).size(), static_cast<size_t>(kDeep));
  // The error names the template the caller named and points at the 257th "(".
  try {
    Template t("{{ " + repeat("(", 300) + "1" + repeat(")", 300) + " }}", Options{},
               "chat_template");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "chat_template:1:260: " + kTooDeep);
  }
}

TEST(JinjaDepth, RecursiveMacrosStopWithAnErrorNotAStackOverflow) {
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
                .find("macro recursion too deep (more than 200 calls)"),
            std::string::npos);
  // Each call nests 200 levels: the macro limit alone would allow 40,000 levels of evaluation.
  std::string deep_body = repeat("[", 200) + "f()" + repeat("]", 200);
  EXPECT_NE(error_of("{% macro f() %}{{ " + deep_body + " }}{% endmacro %}{{ f() }}")
                .find("template recursion too deep (more than 512 nested evaluations)"),
            std::string::npos);
  // A macro recursing a bounded number of times still works.
  EXPECT_EQ(R("{% macro count(n) %}{% if n > 0 %}{{ n }}{{ count(n - 1) }}{% endif %}{% endmacro "
              "%}{{ count(50) | length }}"),
            "91");
  EXPECT_NE(
      error_of("{% for x in y recursive %}{% endfor %}").find("recursive loops are not supported"),
      std::string::npos);
}

TEST(JinjaDepth, NamespacesCannotGrowWithoutBoundOrHoldThemselves) {
  // A namespace carries values across loop iterations: 100,000 levels of list overflowed the
  // stack when printed or destroyed.
  EXPECT_NE(error_of("{% set ns = namespace(x=0) %}{% for i in range(100000) %}"
                     "{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}")
                .find("value nested too deeply (more than 1024 levels)"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(x=0) %}{% for i in range(100000) %}"
                     "{% set ns.x = namespace(y=ns.x) %}{% endfor %}{{ ns.x }}")
                .find("value nested too deeply (more than 1024 levels)"),
            std::string::npos);
  // A namespace holding itself would be printed forever.
  const std::string cycle = "cannot store a namespace inside itself";
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").find(cycle),
            std::string::npos);
  EXPECT_NE(error_of("{% set a = namespace() %}{% set b = namespace(a=a) %}{% set a.b = [b] %}"
                     "{{ a }}")
                .find(cycle),
            std::string::npos);
  // Shared, not nested: the same value twice is fine, and is measured once, not 2^60 times.
  EXPECT_EQ(R("{% set ns = namespace(x=[]) %}{% for i in range(60) %}"
              "{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x[0][1][0] | length }}"),
            "2");
  EXPECT_EQ(R("{% set ns = namespace(n=[]) %}{% for i in range(3) %}"
              "{% set ns.n = ns.n + [i] %}{% endfor %}{{ ns.n }}"),
            "[0, 1, 2]");
}

}  // namespace
}  // namespace hone::jinja

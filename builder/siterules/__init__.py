"""A site's redirect, rewrite and header rules: Vercel's and Netlify's semantics, checked and
compiled once (standard library only: the builder checks them, the proxy serves them).

- `compile_rules(raw) -> CompiledRules` (`compiled`): a manifest's `rules` object; raises
  `RuleError(kind, index, message)`.
- `Rules.parse(redirects_text, headers_text)` (`files`): a site's `_redirects` and `_headers`.
"""

from builder.siterules.compiled import CompiledRules, Matched, RuleError, compile_rules
from builder.siterules.conditions import RequestView
from builder.siterules.files import MAX_RULES, Rules

__all__ = [
    "MAX_RULES",
    "CompiledRules",
    "Matched",
    "RequestView",
    "RuleError",
    "Rules",
    "compile_rules",
]
